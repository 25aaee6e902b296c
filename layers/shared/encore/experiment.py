"""The online test's decision: champion against challenger on play-through rate (completes / attributed plays,
from the attribution table), with a two-proportion z-test.

- Either variant below ``min_plays`` attributed plays: **extend** (too few to say anything).
- Otherwise the pooled two-sided z-test: when ``p < alpha``, the better variant wins (**promote** the challenger,
  or **keep** the champion); when not, **extend** until ``max_days``, then **keep** the champion (no evidence the
  challenger is better is a reason not to switch).

Pure Python (``math.erfc``), so the pipeline function that decides needs no SciPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Action = Literal["promote", "keep", "extend"]


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
