"""The online test's decision on known cases, its z-test against SciPy's chi-squared test of the same 2x2 table
(for two proportions, chi-squared without continuity correction is z squared, and the p-values agree)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from encore.errors import StoreUnavailable
from encore.experiment import (
    CHALLENGER,
    CHAMPION,
    Arm,
    LiveTest,
    LiveTestReader,
    assign,
    closed_day,
    decide,
    two_proportion_z,
)

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


def test_assignment_is_sticky_uniform_and_new_for_each_test() -> None:
    listeners = [f"user-{i}" for i in range(20_000)]
    first = [assign(u, "model-b", 0.1) for u in listeners]
    assert first == [assign(u, "model-b", 0.1) for u in listeners]  # a listener sees one model
    share = first.count(CHALLENGER) / len(listeners)
    assert 0.09 < share < 0.11  # binomial sd is 0.002: five of them either side
    other = [assign(u, "model-c", 0.1) for u in listeners]
    both = sum(a == b == CHALLENGER for a, b in zip(first, other, strict=True)) / len(listeners)
    assert 0.005 < both < 0.015  # another test draws an independent split (0.1 x 0.1 expected)
    assert {assign(u, "model-b", 0.0) for u in listeners[:500]} == {CHAMPION}


def test_a_live_test_sums_its_own_rows_only() -> None:
    serving = {"version": "a", "test": {"challenger": {"version": "b"}, "share": 0.2, "started_at": 0}}
    test = LiveTest.of(serving)
    assert test is not None and LiveTest.of({"version": "a"}) is None and LiveTest.of(None) is None
    assert test.variant_of(None) == CHAMPION  # answers for no listener: the champion's
    rows = [
        {"variant": CHAMPION, "model_version": "a", "plays": 10, "completes": 7},
        {"variant": CHAMPION, "model_version": "a", "plays": 5, "completes": 1},
        {"variant": CHALLENGER, "model_version": "b", "plays": 8, "completes": 2},
        {"variant": CHALLENGER, "model_version": "old", "plays": 100, "completes": 100},  # an earlier test's
        {"variant": None, "model_version": None, "plays": 50, "completes": 50},  # fallbacks
    ]
    assert test.arms(rows) == (Arm(15, 8), Arm(8, 2))


def test_the_reader_reads_once_a_minute_and_keeps_what_it_knew_when_the_store_fails() -> None:
    now, reads = [0.0], []
    record: dict[str, object] = {
        "version": "a",
        "test": {"challenger": {"version": "b"}, "share": 0.1, "started_at": 5},
    }

    def read() -> dict[str, object]:
        reads.append(now[0])
        if now[0] >= 200:
            raise StoreUnavailable("lake", "SlowDown")
        return record

    reader = LiveTestReader(read, ttl_s=60, clock=lambda: now[0])
    test, fresh = reader.current()
    assert fresh and test is not None and test.challenger == "b"
    now[0] = 59
    assert reader.current() == (test, True) and reads == [0.0]
    record = {"version": "b"}  # the test ended
    now[0] = 61
    assert reader.current() == (None, True)
    now[0] = 250
    assert reader.current() == (None, False)  # unreadable: what was known, said so


def test_a_day_closes_when_the_window_of_its_last_answer_has_ended() -> None:
    at = datetime(2026, 1, 3, 0, 30, tzinfo=UTC)
    assert closed_day(at, 24) == date(2026, 1, 1)
    assert closed_day(at.replace(hour=0, minute=0) - timedelta(minutes=1), 24) == date(2025, 12, 31)
    assert closed_day(at, 1) == date(2026, 1, 1)
