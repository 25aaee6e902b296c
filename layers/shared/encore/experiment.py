"""The online test: who sees which model, and the decision, champion against challenger on play-through rate
(completes / attributed plays, from the attribution table), with a two-proportion z-test.

Assignment is sticky: a listener's variant is a hash of the challenger's version and the listener, so a listener
sees one model for the whole test, and each new test draws a new split.

- Either variant below ``min_plays`` attributed plays: **extend** (too few to say anything).
- Otherwise the pooled two-sided z-test: when ``p < alpha``, the better variant wins (**promote** the challenger,
  or **keep** the champion); when not, **extend** until ``max_days``, then **keep** the champion (no evidence the
  challenger is better is a reason not to switch).

Pure Python (``math.erfc``), so the pipeline function that decides needs no SciPy.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from encore.errors import StoreUnavailable

Action = Literal["promote", "keep", "extend"]
# The endpoint's production variants: the model serving everyone, and the one under test beside it.
CHAMPION, CHALLENGER = "champion", "challenger"
TEST_READ_TTL_S = 60.0


def closed_day(now: datetime, window_hours: int) -> date:
    """The newest day whose answers can get no more plays: the window of its last answer has ended."""
    return (now - timedelta(hours=window_hours)).date() - timedelta(days=1)


def assign(user_id: str, salt: str, share: float) -> str:
    """``CHALLENGER`` for a stable ``share`` of listeners (a uniform hash of salt and listener), else ``CHAMPION``."""
    digest = hashlib.sha256(f"{salt}\0{user_id}".encode()).digest()
    return CHALLENGER if int.from_bytes(digest[:8], "big") / 2.0**64 < share else CHAMPION


@dataclass(frozen=True)
class LiveTest:
    """A test running on the endpoint, as the serving record (``models/serving.json``) states it."""

    champion: str  # model versions
    challenger: str
    share: float
    started_at: int

    @classmethod
    def of(cls, serving: dict[str, Any] | None) -> LiveTest | None:
        test = serving.get("test") if serving else None
        if serving is None or not test:
            return None
        return cls(serving["version"], test["challenger"]["version"], float(test["share"]), int(test["started_at"]))

    def variant_of(self, user_id: str | None) -> str:
        """A listener's variant; answers for no listener (similar tracks) come from the champion."""
        return assign(user_id, self.challenger, self.share) if user_id else CHAMPION

    def version_of(self, variant: str) -> str:
        return self.challenger if variant == CHALLENGER else self.champion

    def arms(self, rows: Iterable[dict[str, Any]]) -> tuple[Arm, Arm]:
        """Champion's and challenger's attributed plays and completes, summed over attribution rows (any day, any
        surface); rows of other models or of no variant (fallbacks) are not the test's."""
        sums = {CHAMPION: [0, 0], CHALLENGER: [0, 0]}
        for row in rows:
            variant = row.get("variant")
            if variant in sums and row.get("model_version") == self.version_of(variant):
                sums[variant][0] += int(row["plays"])
                sums[variant][1] += int(row["completes"])
        return Arm(*sums[CHAMPION]), Arm(*sums[CHALLENGER])


@dataclass
class LiveTestReader:
    """The running test, read from the serving record at most once a ``ttl_s`` per instance (a test starts or ends
    once a night; a request must not pay an S3 read). A failed read keeps what was last known."""

    read: Callable[[], dict[str, Any] | None]
    ttl_s: float = TEST_READ_TTL_S
    clock: Callable[[], float] = time.monotonic
    _known: LiveTest | None = None
    _until: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self) -> tuple[LiveTest | None, bool]:
        """The test (``None``: none runs) and whether the record could be read this time."""
        with self._lock:
            if self.clock() < self._until:
                return self._known, True
            try:
                self._known = LiveTest.of(self.read())
                fresh = True
            except (StoreUnavailable, ValueError, KeyError, TypeError):  # unreadable: serve on as known
                fresh = False
            self._until = self.clock() + self.ttl_s
            return self._known, fresh


@dataclass(frozen=True)
class Arm:
    plays: int
    completes: int

    @property
    def rate(self) -> float:
        return self.completes / self.plays if self.plays else 0.0


@dataclass(frozen=True)
class OnlineDecision:
    action: Action
    reason: str
    champion_rate: float
    challenger_rate: float
    z: float | None = None
    p_value: float | None = None

    @property
    def confidence(self) -> float | None:
        """``1 - p``: how sure the test is that the rates differ."""
        return None if self.p_value is None else 1.0 - self.p_value


def two_proportion_z(a: Arm, b: Arm) -> tuple[float, float]:
    """z of ``b``'s rate over ``a``'s (pooled standard error) and its two-sided p-value."""
    pooled = (a.completes + b.completes) / (a.plays + b.plays)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.plays + 1 / b.plays))
    if se == 0:
        return 0.0, 1.0
    z = (b.rate - a.rate) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def decide(
    champion: Arm, challenger: Arm, *, days_run: int, alpha: float = 0.05, min_plays: int = 500, max_days: int = 14
) -> OnlineDecision:
    rates = {"champion_rate": champion.rate, "challenger_rate": challenger.rate}
    if min(champion.plays, challenger.plays) < min_plays:
        fewest = min(champion.plays, challenger.plays)
        if days_run >= max_days:
            return OnlineDecision("keep", f"after {days_run} days a variant has {fewest} plays (< {min_plays}): "
                                "keeping the champion", **rates)  # fmt: skip
        return OnlineDecision("extend", f"a variant has {fewest} attributed plays (< {min_plays})", **rates)
    z, p = two_proportion_z(champion, challenger)
    said = (f"play-through {challenger.rate:.4f} (challenger) against {champion.rate:.4f} (champion), "
            f"z = {z:.2f}, p = {p:.4f}")  # fmt: skip
    if p < alpha:
        action: Action = "promote" if z > 0 else "keep"
        winner = "the challenger" if z > 0 else "the champion"
        return OnlineDecision(action, f"{said}: {winner} is better at {1 - alpha:.0%} confidence", z=z, p_value=p,
                            **rates)  # fmt: skip
    if days_run >= max_days:
        return OnlineDecision("keep", f"{said}: no difference after {days_run} days; keeping the champion", z=z,
                            p_value=p, **rates)  # fmt: skip
    return OnlineDecision("extend", f"{said}: not yet significant (alpha {alpha})", z=z, p_value=p, **rates)
