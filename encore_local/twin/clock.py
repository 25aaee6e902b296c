"""The twin's notion of now: what the twin's services and functions read as the current time.

``set`` moves it to a notional time (it then runs on from there), ``set(None)`` is the real clock again; the twin's
control is ``POST /_encore/clock``. Read by: Step Functions (the start and stop dates of executions), Firehose (the
arrival prefixes of what it delivers) and the Lambda functions (``time.time()`` in their execution environments), so
a simulated history and a replayed hour are as recent to the whole stack as real ones would be.
"""

from __future__ import annotations

import datetime as _dt


class TwinClock:
    """``wait_scale`` is how long a Step Functions ``Wait`` state lasts, as a share of its time."""

    def __init__(self) -> None:
        self.offset = _dt.timedelta(0)
        self.wait_scale = 1 / 600

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(tz=_dt.UTC) + self.offset

    def set(self, iso: str | None) -> None:
        if not iso:
            self.offset = _dt.timedelta(0)
            return
        at = _dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
        at = at if at.tzinfo else at.replace(tzinfo=_dt.UTC)
        self.offset = at - _dt.datetime.now(tz=_dt.UTC)


CLOCK = TwinClock()
