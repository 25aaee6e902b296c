"""The twin's pool of Lambda instances under contention: callers waiting for a busy function's instance are
served in the order they came (a caller arriving later never jumps the queue, so none starves under load), and
no caller waits past its deadline (API Gateway's 29 s counts the wait for an instance too)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from encore_local.twin.lambda_ import IntegrationTimeout, LambdaService

pytestmark = pytest.mark.unit


class _Instance:
    def alive(self) -> bool:
        return True

    def usable(self) -> bool:
        return True

    def invoke(self, payload: Any, timeout_s: float) -> tuple[Any, float]:
        return {"statusCode": 200}, 0.1


def _pool() -> tuple[LambdaService, Any, _Instance]:
    pool = LambdaService(deployment=None, twin_env=dict, log_dir=Path("."), max_instances=1)  # type: ignore[arg-type]
    fn, only = SimpleNamespace(name="events", timeout_s=10.0), _Instance()
    pool._idle["events"], pool._count["events"] = [only], 1  # type: ignore[list-item]
    return pool, fn, only


def test_callers_waiting_for_an_instance_get_it_in_the_order_they_came() -> None:
    pool, fn, only = _pool()
    held = pool._take(fn)
    served: list[int] = []

    def caller(n: int) -> None:
        instance = pool._take(fn)
        served.append(n)
        time.sleep(0.01)
        pool._give_back(fn, instance)

    waiting = []
    for n in range(6):  # they queue one after another
        waiting.append(threading.Thread(target=caller, args=(n,)))
        waiting[-1].start()
        time.sleep(0.02)
    pool._give_back(fn, held)
    late = threading.Thread(target=caller, args=(99,))  # arrives as the instance comes back: it queues behind
    late.start()
    for t in [*waiting, late]:
        t.join(5)
    assert served == [0, 1, 2, 3, 4, 5, 99]
    assert only in pool._idle["events"] and not pool._waiting["events"]


def test_no_caller_waits_past_its_deadline_for_an_instance() -> None:
    pool, fn, _ = _pool()
    held = pool._take(fn)
    started = time.monotonic()
    with pytest.raises(IntegrationTimeout, match=r"no instance of events was free within 0\.2 s"):
        pool.invoke_function(fn, {}, deadline_s=0.2)
    assert 0.2 <= time.monotonic() - started < 1.0
    assert not pool._waiting["events"]  # it left the queue
    pool._give_back(fn, held)
    assert pool.invoke_function(fn, {}, deadline_s=0.2)[0] == {"statusCode": 200}
