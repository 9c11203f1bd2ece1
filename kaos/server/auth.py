"""Bearer-token authentication: each token names its user, who becomes the deploy's author.

Off when no token is configured (the embedded server on 127.0.0.1). Tokens are compared in
constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import TYPE_CHECKING

from kaos.errors import ConfigError, Forbidden, Unauthorized
from kaos.net import is_loopback

if TYPE_CHECKING:
    from kaos.server.settings import Settings


class TokenTable:
    def __init__(self, tokens: dict[str, str], admins: set[str] | None = None) -> None:
        self._tokens = [(token.encode(), user) for token, user in tokens.items()]
        self.admins = admins or set()

    def require_admin(self, user: str) -> None:
        """Store maintenance (gc, repair) is for admins when tokens are on; without tokens the
        server serves this machine only and everyone is trusted."""
        if self.enabled and user not in self.admins:
            raise Forbidden(
                f"{user} is not an admin of this server",
                "ask an admin (the --token user, or a tokens file line 'user token admin')",
            )

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    @property
    def users(self) -> set[str]:
        return {user for _, user in self._tokens}

    @classmethod
    def from_settings(cls, token: str | None, tokens_file: Path | None) -> TokenTable:
        tokens: dict[str, str] = {}
        admins: set[str] = set()

        def give(secret: str, user: str) -> None:
            """One token, one user: a shared one would log its first owner in as the last."""
            owner = tokens.setdefault(secret, user)
            if owner != user:
                raise ConfigError(
                    f"the same token is given to {owner} and {user}",
                    "give every user a token of their own (openssl rand -hex 20)",
                )

        if token:  # the operator's own token: an admin
            user, _, secret = token.rpartition(":") if ":" in token else ("kaos", "", token)
            give(secret, user)
            admins.add(user)
        if tokens_file:
            for user, secret, admin in read_tokens_file(tokens_file):
                give(secret, user)
                if admin:
                    admins.add(user)
        for secret in tokens:
            if len(secret) < 16:
                raise ConfigError(
                    "tokens must be at least 16 characters", "make them with: openssl rand -hex 20"
                )
        return cls(tokens, admins)

    def user_for(self, authorization: str | None) -> str:
        """The user a request's Authorization header proves, or Unauthorized."""
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise Unauthorized(
                "this kaos server needs a token", "log in with 'kaos init -e URL -t TOKEN'"
            )
        offered = presented.strip().encode()
        found = None
        for secret, user in self._tokens:  # every comparison runs: timing tells nothing
            if hmac.compare_digest(secret, offered):
                found = user
        if found is None:
            raise Unauthorized(
                "the token was refused", "check it, then run 'kaos init -e URL -t TOKEN'"
            )
        return found


def read_tokens_file(path: Path) -> list[tuple[str, str, bool]]:
    """Lines of `user token` or `user token admin`; blank lines and # comments are skipped."""
    entries: list[tuple[str, str, bool]] = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"tokens file not found: {path}") from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "admin"):
            raise ConfigError(f"{path} line {number}: expected 'user token' or 'user token admin'")
        entries.append((parts[0], parts[1], len(parts) == 3))
    return entries


def check_exposure(settings: Settings) -> None:
    """Refuse to serve beyond this machine without tokens: whoever reaches an open server can
    run code on it. `--insecure` (KAOS_INSECURE=1) says the network is trusted."""
    tokens = TokenTable.from_settings(settings.token, settings.tokens_file)
    if tokens.enabled or settings.insecure or is_loopback(settings.host):
        return
    raise ConfigError(
        f"refusing to listen on {settings.host} without tokens: anyone who reaches it could "
        "run code on this machine",
        "set --token or --tokens-file (or KAOS_TOKEN), bind 127.0.0.1, or pass --insecure",
    )
