"""The dashboard's door: the session cookie, CSRF tokens, and login rate limiting.

- The session is one of the journal's sessions (the people issue): a random token in an
  ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` over TLS) of which the journal keeps only
  the SHA-256; it ends with the shift, at logout, or when its account is disabled.
- Every state-changing request carries a CSRF token: an HMAC of the session token under a
  key of this server process, in a form field or the ``X-CSRF-Token`` header; before login, a
  random token in a cookie of its own, repeated in the form (double submit). A request whose
  ``Origin`` is another site is refused too.
- Logins are rate limited per client address (a sliding window), on top of the account
  lockout after wrong passphrases.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SESSION_COOKIE = "cardline_session"
LOGIN_CSRF_COOKIE = "cardline_login_csrf"
LANG_COOKIE = "cardline_lang"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOGIN_ATTEMPTS = 10  # per client address …
LOGIN_WINDOW_S = 60.0  # … within this many seconds


@dataclass
class Guard:
    """The per-process secrets and counters of one dashboard server."""

    secure: bool = False  # served over TLS: cookies get the Secure flag
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    attempts: int = LOGIN_ATTEMPTS
    window_s: float = LOGIN_WINDOW_S
    _tries: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def csrf_for(self, session_token: str) -> str:
        """The CSRF token of a session (stable for the session's life in this process)."""
        return hmac.new(self.key, session_token.encode("ascii", "replace"),
                        hashlib.sha256).hexdigest()

    def csrf_ok(self, expected: str | None, given: str | None) -> bool:
        """``given`` matches ``expected`` (compared in constant time; both present)."""
        return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))

    def login_allowed(self, client: str, now: float | None = None) -> bool:
        """Count a login attempt from ``client``; False when it is over the limit."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tries = self._tries.setdefault(client, deque())
            while tries and tries[0] <= now - self.window_s:
                tries.popleft()
            if len(tries) >= self.attempts:
                return False
            tries.append(now)
            if len(self._tries) > 10_000:  # forget idle addresses: bounded memory
                for key in [k for k, v in self._tries.items() if not v]:
                    del self._tries[key]
            return True

    def cookie_options(self, max_age: int | None = None) -> dict[str, object]:
        """The flags every cookie of the dashboard is set with."""
        return {"httponly": True, "samesite": "strict", "secure": self.secure, "path": "/",
                "max_age": max_age}


def new_login_token() -> str:
    """A random token for the login form's double submit."""
    return secrets.token_urlsafe(32)


def same_origin(headers: Mapping[str, str], host: str | None) -> bool:
    """False when the request names an ``Origin`` (or, lacking one, a ``Referer``) of another
    host than the one it was sent to; True when it names none (older clients, scripts)."""
    source = headers.get("origin") or headers.get("referer")
    if not source or source == "null":
        return source is None
    return host is not None and urlsplit(source).netloc == host
