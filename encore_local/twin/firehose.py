"""The twin's Firehose: moto's delivery stream, with the S3 object names Firehose gives.

moto appends ``YYYY/MM/DD/HH/`` to every prefix; Firehose does that only for a prefix without expressions. A
custom prefix such as the stack's ``raw/events/!{timestamp:yyyy/MM/dd/HH}/`` is evaluated instead (its
``!{timestamp:...}`` in the arrival time, in UTC) and used as it is. The arrival time is the twin's clock
(``encore_local.twin.clock.CLOCK``), so a replayed hour lands where it would have landed.
"""

from __future__ import annotations

import re
import uuid

from moto.firehose import models

from encore_local.twin.clock import CLOCK

# Java DateTimeFormatter letters Firehose accepts in !{timestamp:...}, as strftime directives.
_JAVA_TO_STRFTIME = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))
_EXPRESSION = re.compile(r"!\{([a-z]+):([^}]*)\}")


def evaluate_prefix(prefix: str, error_output_type: str = "processing-failed") -> str:
    now = CLOCK.now()

    def value(match: re.Match[str]) -> str:
        namespace, argument = match.groups()
        if namespace == "timestamp":
            pattern = argument
            for java, directive in _JAVA_TO_STRFTIME:
                pattern = pattern.replace(java, directive)
            return now.strftime(pattern)
        if argument == "random-string":
            return uuid.uuid4().hex[:11]
        if argument == "error-output-type":
            return error_output_type
        raise ValueError(f"Firehose has no expression !{{{namespace}:{argument}}}")

    return _EXPRESSION.sub(value, prefix)


def _object_path(delivery_stream_name: str, version_id: str, prefix: str) -> str:
    now = CLOCK.now()
    name = f"{delivery_stream_name}-{version_id}-{now:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}"
    if "!{" in prefix:
        return evaluate_prefix(prefix) + name
    prefix = f"{prefix}{'' if prefix.endswith('/') or prefix == '' else '/'}"
    return f"{prefix}{now:%Y/%m/%d/%H}/{name}"


def enable() -> None:
    models.FirehoseBackend._format_s3_object_path = staticmethod(_object_path)  # type: ignore[method-assign]
