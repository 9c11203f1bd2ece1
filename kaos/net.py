"""Whether an address is this machine's: one rule for the client (is its server here?), the
server's bind check and its view of a request's peer."""

from __future__ import annotations


def is_loopback(host: str | None) -> bool:
    """`localhost`, a loopback address, or an IPv4 loopback address mapped into IPv6 (what a
    dual-stack socket reports for 127.0.0.1); a host name is not trusted to resolve here."""
    if not host:
        return False
    host = host.lower()
    if host == "localhost":
        return True
    import ipaddress  # only when asked: not on every command's start-up

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
