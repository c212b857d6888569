"""Console sessions: a browser logs in once with its token and then carries only a random session id.

The cookie holds nothing but that id; the server maps it to the identity. Ids are kept by their
SHA-256 digest, so neither a debug dump of the store nor a log line can replay a live session.
Sessions live in memory: a restart logs the console out, which is acceptable for a command centre
and keeps a stolen database copy from carrying live credentials.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI

from lightctl.api.auth import Identity

COOKIE = "lightctl_session"


@dataclass(frozen=True, slots=True)
class Session:
    identity: Identity
    created: float
    expires: float


class SessionStore:
    def __init__(
        self, lifetime_s: float, now: Callable[[], float] = time.time, max_sessions: int = 10_000
    ) -> None:
        self.lifetime_s = lifetime_s
        self._now = now  # wall-clock time: a demo's sped-up clock must not expire logins early
        self._max = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()  # sync dependencies run on the thread pool

    def create(self, who: Identity) -> tuple[str, Session]:
        """A new session for `who`: its id (for the cookie, never stored) and the session."""
        sid = secrets.token_urlsafe(32)
        now = self._now()
        session = Session(identity=who, created=now, expires=now + self.lifetime_s)
        with self._lock:
            self._prune(now)
            if len(self._sessions) >= self._max:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].created)
                del self._sessions[oldest]
            self._sessions[_digest(sid)] = session
        return sid, session

    def get(self, sid: str) -> Session | None:
        if not sid:
            return None
        key = _digest(sid)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if session.expires <= self._now():
                del self._sessions[key]
                return None
            return session

    def end(self, sid: str) -> bool:
        with self._lock:
            return self._sessions.pop(_digest(sid), None) is not None

    def end_for(self, name: str) -> int:
        """Ends every session of the token named `name` (e.g. after it was revoked); returns how many."""
        with self._lock:
            doomed = [k for k, s in self._sessions.items() if s.identity.name == name]
            for key in doomed:
                del self._sessions[key]
            return len(doomed)

    def active(self) -> int:
        with self._lock:
            self._prune(self._now())
            return len(self._sessions)

    def _prune(self, now: float) -> None:
        expired = [k for k, s in self._sessions.items() if s.expires <= now]
        for key in expired:
            del self._sessions[key]


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def sessions_of(app: FastAPI) -> SessionStore:
    store: SessionStore = app.state.sessions
    return store
