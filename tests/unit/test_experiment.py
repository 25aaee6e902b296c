"""The online test's decision on known cases, its z-test against SciPy's chi-squared test of the same 2x2 table
(for two proportions, chi-squared without continuity correction is z squared, and the p-values agree)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from encore.experiment import Arm, decide, two_proportion_z

pytestmark = pytest.mark.unit


@given(
    st.integers(20, 5000), st.floats(0.05, 0.95), st.integers(20, 5000), st.floats(0.05, 0.95),
)  # fmt: skip
def test_the_z_test_agrees_with_scipys_chi_squared(n1: int, r1: float, n2: int, r2: float) -> None:
    a, b = Arm(n1, round(n1 * r1)), Arm(n2, round(n2 * r2))
    z, p = two_proportion_z(a, b)
    table = [[a.completes, a.plays - a.completes], [b.completes, b.plays - b.completes]]
    chi2, p_scipy, _, _ = chi2_contingency(table, correction=False)
    assert z * z == pytest.approx(chi2, rel=1e-9, abs=1e-9)
    assert p == pytest.approx(p_scipy, rel=1e-6, abs=1e-12)


def test_a_clearly_better_challenger_is_promoted_and_a_worse_one_is_not() -> None:
    better = decide(Arm(2000, 800), Arm(2000, 900), days_run=3)  # 40% against 45%
    assert better.action == "promote" and better.p_value is not None and better.p_value < 0.01
    assert better.confidence is not None and better.confidence > 0.99
    worse = decide(Arm(2000, 900), Arm(2000, 800), days_run=3)
    assert worse.action == "keep" and "champion is better" in worse.reason


def test_too_few_plays_or_no_difference_extends_then_keeps() -> None:
    assert decide(Arm(400, 200), Arm(3000, 1800), days_run=2).action == "extend"  # a variant under 500 plays
    assert decide(Arm(400, 200), Arm(3000, 1800), days_run=14).action == "keep"
    close = decide(Arm(1000, 400), Arm(1000, 410), days_run=5)  # 40% against 41%: p about 0.65
    assert close.action == "extend" and close.p_value is not None and close.p_value > 0.5
    assert decide(Arm(1000, 400), Arm(1000, 410), days_run=14).action == "keep"
    assert decide(Arm(600, 0), Arm(600, 0), days_run=3).action == "extend"  # no variance: nothing to tell apart
