"""Sign-in attempts slow down after wrong passwords: counted per name and per client address, in the
server process (every session of the server shares them), with an exponential wait and a cap. While a
wait runs, an attempt is refused before its password is even compared."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FREE_FAILURES = 3          # typos before any wait
BASE_S = 2.0               # the first wait; doubled at each further failure
CAP_S = 300.0
KEPT = 10_000              # counts kept at most; quiet ones (a cap's length without a failure) go first


@dataclass
class _Failures:
    count: int
    last: float


def wait_after(failures: int) -> float:
    """Seconds to wait after `failures` wrong passwords in a row."""
    if failures <= FREE_FAILURES:
        return 0.0
    return min(CAP_S, BASE_S * 2 ** (failures - FREE_FAILURES - 1))


class SignInLimits:
    """Failures per key ("name:alice", "address:10.0.0.7"); `clock` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def wait_s(self, keys: Iterable[str]) -> float:
        """How long any of `keys` must still wait before its next attempt (0: it may try now)."""
        now = self._clock()
        with self._lock:
            waits = [f.last + wait_after(f.count) - now for k in keys if (f := self._failures.get(k))]
        return max([0.0, *waits])

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                known = self._failures.get(key)
                self._failures[key] = _Failures(known.count + 1 if known else 1, now)
            if len(self._failures) > KEPT:
                self._failures = {k: f for k, f in self._failures.items() if now - f.last < CAP_S}

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
