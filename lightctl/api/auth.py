"""Bearer tokens: each configured with a name and a role, stored only as an argon2 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lightctl.config.settings import ROLES, Token

_hasher = PasswordHasher()

# Each role can do everything the roles before it can.
RANK: dict[str, int] = {role: i for i, role in enumerate(ROLES)}

DEMO_TOKENS: dict[str, str] = {f"demo-{role}": role for role in ROLES}


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return _hasher.hash(token)


class TokenBook:
    """Checks presented tokens against the configured hashes.

    argon2 takes tens of milliseconds by design, too slow for every API call, so a token that has
    verified once is remembered by its SHA-256 digest (kept only in memory) for the process's life.
    """

    def __init__(self, tokens: list[Token], demo: bool = False) -> None:
        self._tokens = list(tokens)
        self._known: dict[str, Identity] = {}
        if demo:
            for token, role in DEMO_TOKENS.items():
                self._tokens.append(Token(name=token, role=role, hash=hash_token(token)))

    def identify(self, presented: str) -> Identity | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).hexdigest()
        known = self._known.get(digest)
        if known is not None:
            return known
        for token in self._tokens:
            try:
                _hasher.verify(token.hash, presented)
            except (VerificationError, InvalidHashError):
                continue
            identity = Identity(token.name, token.role)
            self._known[digest] = identity
            return identity
        return None
