"""The learned ranking stage at serving time: LightGBM's trees as plain arrays, scored with NumPy.

``train.fit_ranker`` trains a LambdaRank model on candidate lists; ``Trees`` holds its trees as arrays (split
feature, threshold, children, leaf values), so serving needs neither LightGBM nor a pickle. Python
3.9-compatible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Trees:
    """Every tree as rows of equal-length arrays; a child index ``< 0`` is the leaf ``~child``."""

    feature: np.ndarray  # (trees, internal nodes) int32
    threshold: np.ndarray  # (trees, internal nodes) float64: go left when x <= threshold
    left: np.ndarray  # (trees, internal nodes) int32
    right: np.ndarray  # (trees, internal nodes) int32
    value: np.ndarray  # (trees, leaves) float64
    depth: int
    features: tuple[str, ...]

    def __post_init__(self) -> None:
        # One flat node table for all trees, leaves included as nodes that lead to themselves: each step of
        # ``predict`` is then a few 1-D gathers over (trees x candidates), whatever depth a path stopped at.
        n_trees, inner = self.feature.shape
        leaves = self.value.shape[1]
        width = inner + leaves
        base = (np.arange(n_trees) * width)[:, None]

        def child(c: np.ndarray) -> np.ndarray:
            return np.where(c >= 0, base + c, base + inner + ~c).ravel()

        self._feature = np.concatenate([self.feature, np.zeros((n_trees, leaves), np.int32)], axis=1).ravel()
        self._threshold = np.concatenate([self.threshold, np.full((n_trees, leaves), np.inf)], axis=1).ravel()
        own = (base + inner + np.arange(leaves)[None, :]).ravel().reshape(n_trees, leaves)
        self._left = np.concatenate([child(self.left).reshape(n_trees, inner), own], axis=1).ravel()
        self._right = np.concatenate([child(self.right).reshape(n_trees, inner), own], axis=1).ravel()
        self._value = np.concatenate([np.zeros((n_trees, inner)), self.value], axis=1).ravel()
        self._roots = base.astype(np.int64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The summed leaf values of every tree for each row of ``x`` (candidates x features)."""
        n_trees = self.feature.shape[0]
        if n_trees == 0 or x.shape[0] == 0:
            return np.zeros(x.shape[0])
        flat = np.ascontiguousarray(x, dtype=np.float64).ravel()
        row_base = (np.arange(x.shape[0]) * x.shape[1])[None, :]
        node = np.repeat(self._roots, x.shape[0], axis=1)
        for _ in range(self.depth):
            go_left = flat.take(row_base + self._feature.take(node)) <= self._threshold.take(node)
            node = np.where(go_left, self._left.take(node), self._right.take(node))
        return self._value.take(node).sum(axis=0)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}_feature": self.feature,
            f"{prefix}_threshold": self.threshold,
            f"{prefix}_left": self.left,
            f"{prefix}_right": self.right,
            f"{prefix}_value": self.value,
            f"{prefix}_names": np.array(self.features, dtype=str),
        }

    @classmethod
    def from_arrays(cls, z: Any, prefix: str) -> Trees:
        feature = z[f"{prefix}_feature"]
        left, right = z[f"{prefix}_left"], z[f"{prefix}_right"]
        return cls(feature, z[f"{prefix}_threshold"], left, right, z[f"{prefix}_value"], _depth(left, right),
                   tuple(z[f"{prefix}_names"].tolist()))  # fmt: skip

    @classmethod
    def from_lightgbm(cls, dump: dict[str, Any], features: tuple[str, ...]) -> Trees:
        """From ``Booster.dump_model()``: numerical splits only (Encore's features are all numbers, never NaN)."""
        parsed = [_flatten(t["tree_structure"]) for t in dump["tree_info"]]
        inner = max((len(p[0]) for p in parsed), default=0) or 1
        leaves = max((len(p[4]) for p in parsed), default=0) or 1
        shape = (len(parsed), inner)
        feature, left, right = (np.zeros(shape, np.int32) for _ in range(3))
        threshold, value = np.zeros(shape), np.zeros((len(parsed), leaves))
        for t, (f, thr, lc, rc, val) in enumerate(parsed):
            feature[t, : len(f)], threshold[t, : len(f)] = f, thr
            left[t, : len(lc)], right[t, : len(rc)] = lc, rc
            value[t, : len(val)] = val
            if not f:  # a tree of one leaf: its root "splits" to leaf 0 both ways
                left[t, 0] = right[t, 0] = ~0
        return cls(feature, threshold, left, right, value, _depth(left, right), features)


def _flatten(root: dict[str, Any]) -> tuple[list[int], list[float], list[int], list[int], list[float]]:
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []

    def visit(node: dict[str, Any]) -> int:
        if "leaf_value" in node:
            value.append(float(node["leaf_value"]))
            return ~(len(value) - 1)
        if node.get("decision_type") != "<=":
            raise ValueError(f"unsupported split {node.get('decision_type')!r}: the ranker uses numerical features")
        i = len(feature)
        feature.append(int(node["split_feature"]))
        threshold.append(float(node["threshold"]))
        left.append(0)
        right.append(0)
        left[i] = visit(node["left_child"])
        right[i] = visit(node["right_child"])
        return i

    visit(root)
    return feature, threshold, left, right, value


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    """The longest root-to-leaf path over all trees (the number of steps ``predict`` takes)."""
    deepest = 0
    for t in range(left.shape[0]):
        stack = [(0, 1)]
        while stack:
            node, d = stack.pop()
            deepest = max(deepest, d)
            for child in (left[t, node], right[t, node]):
                if child >= 0:
                    stack.append((int(child), d + 1))
    return deepest
