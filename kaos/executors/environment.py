"""The environment a build or a train script sees: made from an allow-list, never the server's.

The server's own environment holds secrets (KAOS_TOKEN, the store's AWS_* credentials, whatever
the operator exported); a user's train script must see none of them. A child gets only what it
needs to run: PATH, HOME, locale, time zone, proxy and CA settings, plus what the caller adds
(the train contract's KAOS_* variables). Builds also get the installers' own settings (UV_*,
PIP_*), which point at package indexes and caches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "TZ",
        "LANG",
        "LANGUAGE",
        # proxies, in both spellings tools read
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        # CA settings, for networks that intercept TLS
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
    }
)
_PREFIXES = ("LC_",)
_BUILD_PREFIXES = ("UV_", "PIP_")


def child_env(
    extra: Mapping[str, str], *, build: bool = False, parent: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed part of `parent` (default: this process's environment), then `extra`."""
    parent = os.environ if parent is None else parent
    prefixes = _PREFIXES + _BUILD_PREFIXES if build else _PREFIXES
    env = {k: v for k, v in parent.items() if k in _NAMES or k.startswith(prefixes)}
    env.update(extra)
    return env
