"""Vectors at rest: float32 little-endian bytes (DynamoDB binary, cache values), NumPy in memory."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def encode(vector: npt.ArrayLike) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def decode(data: bytes | bytearray | memoryview | None) -> FloatArray | None:
    if not data:
        return None
    return np.frombuffer(bytes(data), dtype="<f4").astype(np.float64)
