"""Bearer tokens: each configured with a name and a role, stored only as an argon2 hash."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
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

    def holds(self, who: Identity) -> bool:
        """Whether a token with this name and role is still configured (sessions end when it is not)."""
        return any(t.name == who.name and t.role == who.role for t in self._tokens)


class FailureThrottle:
    """Counts failed authentications per client address and refuses more after `limit` in `window_s`.

    Each failure costs an argon2 verification per configured token, so guessing tokens must be
    neither free for the guesser nor a way to keep the CPU busy.
    """

    def __init__(
        self,
        limit: int = 20,
        window_s: float = 60.0,
        now: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._now = now
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()  # sync dependencies run on the thread pool

    def blocked_for(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may try now."""
        with self._lock:
            times = self._recent(client)
            if times is None or len(times) < self.limit:
                return 0.0
            return max(0.0, times[0] + self.window_s - self._now())

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._recent(client)
            if times is None:
                times = self._failures[client] = deque(maxlen=self.limit)
                while len(self._failures) > self._max_clients:
                    self._failures.popitem(last=False)
            times.append(self._now())

    def _recent(self, client: str) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        cutoff = self._now() - self.window_s
        while times and times[0] < cutoff:
            times.popleft()
        return times
