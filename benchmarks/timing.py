"""The one way the benchmark scripts time code: contestants side by side, in one process.

A speed is compared only with another measured in the same run (benchmarks/README.md), so every
script that times more than one thing runs them through :func:`interleaved`: an untimed warm-up
call of each contestant (oneDNN primitives, caches), then ``rounds`` rounds in each of which
every contestant runs once, in a fixed order or, with ``alternate``, with the order reversed
every other round. :class:`Rounds` holds each contestant's seconds and return values per round
and turns them into rates (median by default, or the best round) and ratios to a reference.
One block of code alone is timed with :class:`Stopwatch` (wall and CPU seconds), and the load
average recorded beside a timing is :func:`load_average`'s (sampled through a long block by
:class:`LoadSampler`).

Example:
    >>> rounds = interleaved({"a": lambda: sum(range(1000)), "b": lambda: 0}, rounds=3)
    >>> len(rounds.seconds["a"]), rounds.results["a"][0]
    (3, 499500)
    >>> rounds.ratio("a", "a", work=1000)
    1.0
    >>> with Stopwatch() as watch:
    ...     _ = sum(range(1000))
    >>> watch.seconds >= 0 and watch.cpu_seconds >= 0
    True
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


class Stopwatch:
    """``with Stopwatch() as w: ...`` -> ``w.seconds`` (wall) and ``w.cpu_seconds`` (process);
    or ``w = Stopwatch().start()`` and ``w.elapsed`` for a whole script's seconds so far."""

    def start(self) -> Stopwatch:
        self.seconds = self.cpu_seconds = 0.0
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    @property
    def elapsed(self) -> float:
        """Wall seconds since :meth:`start`."""
        return time.perf_counter() - self._wall

    @property
    def cpu_elapsed(self) -> float:
        """Process CPU seconds since :meth:`start`."""
        return time.process_time() - self._cpu

    def __enter__(self) -> Stopwatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.seconds, self.cpu_seconds = self.elapsed, self.cpu_elapsed


@dataclass
class Rounds:
    """Seconds and return values of each contestant, one entry per round."""

    seconds: dict[Hashable, list[float]] = field(default_factory=dict)
    results: dict[Hashable, list[Any]] = field(default_factory=dict)

    def rate(self, name: str, work: float, best: bool = False) -> float:
        """``work`` per second of the median round (or of the fastest, with ``best``)."""
        t = self.seconds[name]
        return work / (min(t) if best else statistics.median(t))

    def rates(self, name: str, work: float) -> list[float]:
        """``work`` per second of each round."""
        return [work / t for t in self.seconds[name]]

    def ratio(self, name: str, reference: str, work: float = 1.0, best: bool = False) -> float:
        """How many times faster ``name`` ran than ``reference`` (the same work per call)."""
        return self.rate(name, work, best) / self.rate(reference, work, best)


def interleaved(contestants: dict[Hashable, Callable[[], Any]], rounds: int, warmup: int = 1,
                alternate: bool = False,
                untimed: dict[Hashable, Callable[[], Any]] | None = None) -> Rounds:
    """Run every contestant once per round for ``rounds`` rounds, after ``warmup`` untimed
    calls of each; ``untimed[name]`` (optional) runs before each timed call of ``name`` and is
    not counted (e.g. one warm-up step per round). With ``alternate`` the order is reversed in
    every even-numbered round (the first contestant runs first in round 0, last in round 1)."""
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: expected at least 1 timed round")
    for _ in range(warmup):
        for run in contestants.values():
            run()
    out = Rounds({name: [] for name in contestants}, {name: [] for name in contestants})
    names = list(contestants)
    for r in range(rounds):
        for name in (names[::-1] if alternate and r % 2 else names):
            if untimed and name in untimed:
                untimed[name]()
            with Stopwatch() as watch:
                result = contestants[name]()
            out.seconds[name].append(watch.seconds)
            out.results[name].append(result)
    return out


class LoadSampler:
    """The 1-minute load average every ``every`` seconds while the block runs (a thread)."""

    def __init__(self, every: float = 10.0):
        self.every, self.values = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.values.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any]:
        v = self.values or [os.getloadavg()[0]]
        return {"every_seconds": self.every, "n": len(v), "min": min(v), "mean": sum(v) / len(v),
                "max": max(v)}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded: how busy the machine was."""
    return [round(x, 2) for x in os.getloadavg()]
