"""Bounded retries and stall timeouts for every request l2v-hub makes to the Hub.

``HubSource._call`` sends each request through ``call``: a transient failure (HTTP 408, 425, 429,
5xx, a refused, cut or stalled connection) is retried after a backoff that doubles from
``backoff`` seconds, or after the server's ``Retry-After``, each wait capped at ``max_delay``;
after ``attempts`` tries the last error is raised. Anything else (404, 401, a bad request) is
raised at once. ``settle`` lets a caller check, before a retry, whether a write whose answer was
lost did land (a commit, a tag), so it is not made twice.

``timeout`` bounds how long one request may stall (connect, read, write): huggingface_hub's HTTP
client has no timeout of its own, so ``bound_requests`` gives it one, unless the application set
its own client factory. The policy is read from the environment at import (``L2V_HUB_RETRIES``,
``L2V_HUB_BACKOFF``, ``L2V_HUB_MAX_DELAY``, ``L2V_HUB_TIMEOUT``) and can be replaced by assigning
``retry.POLICY``.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["POLICY", "RetryPolicy", "bound_requests", "call", "is_transient"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` tries per request (the first included), waits doubling from
    ``backoff`` seconds and capped at ``max_delay``, and ``timeout`` seconds of stall per request."""

    attempts: int = 4
    backoff: float = 1.0
    max_delay: float = 20.0
    timeout: float = 30.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        default = cls()

        def number(name: str, fallback: float) -> float:
            text = os.environ.get(name)
            try:
                return max(float(text), 0.0) if text else fallback
            except ValueError:
                log.warning("%s=%r is not a number; using %s", name, text, fallback)
                return fallback

        return cls(
            attempts=max(int(number("L2V_HUB_RETRIES", default.attempts - 1)), 0) + 1,
            backoff=number("L2V_HUB_BACKOFF", default.backoff),
            max_delay=number("L2V_HUB_MAX_DELAY", default.max_delay),
            timeout=number("L2V_HUB_TIMEOUT", default.timeout) or default.timeout,
        )

    def delay(self, attempt: int, exc: BaseException) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        wait = _retry_after(exc)
        return min(self.backoff * 2 ** (attempt - 1) if wait is None else wait, self.max_delay)


POLICY = RetryPolicy.from_env()


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures of whichever HTTP stack huggingface_hub uses (it has changed)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (
        ("httpx2", ("TransportError",)),
        ("httpx", ("TransportError",)),
        ("requests", ("ConnectionError", "Timeout")),
    ):
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(imported, n) for n in names if hasattr(imported, n)]
    return tuple(found)


_NETWORK = _network_errors()


def _status(exc: BaseException) -> int | None:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """True when trying again may succeed: a 408/425/429/5xx answer or a network failure, also
    when wrapped (huggingface_hub raises ``LocalEntryNotFoundError`` from the network error)."""
    seen: BaseException | None = exc
    for _ in range(8):  # follow explicit causes only, a few levels deep
        if seen is None:
            return False
        if _status(seen) is not None:
            return _status(seen) in TRANSIENT_STATUS
        if isinstance(seen, _NETWORK):
            return True
        seen = seen.__cause__
    return False


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the backoff applies
        return None


def call(
    what: str,
    fn: Callable[..., _T],
    /,
    *args: Any,
    settle: Callable[[], _T | None] | None = None,
    **kw: Any,
) -> _T:
    """``fn(*args, **kw)``, retried on transient failures as ``POLICY`` says (``what`` names the
    request in log lines). Before each retry ``settle()`` may return the result instead."""
    policy = POLICY
    attempts = max(policy.attempts, 1)
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kw)
        except Exception as exc:
            if attempt >= attempts or not is_transient(exc):
                if attempt > 1:
                    exc.add_note(f"gave up after {attempt} attempts")
                raise
            wait = policy.delay(attempt, exc)
            log.warning(
                "%s: %s: %.120s; retry %d of %d in %.2g s",
                what, type(exc).__name__, exc, attempt, attempts - 1, wait,
            )
            time.sleep(wait)
            if settle is not None:
                try:
                    done = settle()
                except Exception as check:  # the check is a request too; the retry decides
                    log.info("%s: could not check whether it landed (%.120s)", what, check)
                    done = None
                if done is not None:
                    return done
    raise AssertionError("unreachable: the loop returns or raises")


def bound_requests() -> None:
    """Give huggingface_hub's shared HTTP client a stall timeout (``POLICY.timeout``), which it
    lacks by default: only when the application kept huggingface_hub's default client factory."""
    try:
        from huggingface_hub.utils import _http
    except ImportError:  # pragma: no cover - an older, requests-based huggingface_hub
        return
    default = getattr(_http, "default_client_factory", None)
    if default is None or getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) is not default:
        return

    def bounded_client() -> Any:
        client = default()
        client.timeout = POLICY.timeout  # connect, read, write and pool, each
        return client

    _http.set_client_factory(bounded_client)
