"""The hybrid recommender: ALS factors, content vectors, cold-start factors, popularity; exact top-K.

Self-contained (NumPy only at serving time) and Python 3.9-compatible: it runs inside SageMaker's
scikit-learn container, whose Python predates the shared library's. The artifact is plain arrays (``.npz``),
so serving never unpickles a training-time object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARTIFACT = "hybrid.npz"
META = "meta.json"


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the given candidates; a constant array maps to zeros (adds nothing to a blend)."""
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def top_k(scores: np.ndarray, k: int, banned: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k best scores, best first, never a banned index (exact)."""
    s, allowed = scores, scores.size
    if banned is not None and banned.size:
        s = scores.copy()
        s[banned] = -np.inf
        allowed -= np.unique(banned).size
    k = int(min(k, allowed))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-s, k - 1)[:k]
    return part[np.lexsort((part, -s[part]))]


@dataclass
class HybridModel:
    version: str
    track_ids: np.ndarray  # (n,) str
    artist_ids: np.ndarray  # (n,) str
    item_cf: np.ndarray  # (n, f) ALS item factors; cold tracks get factors regressed from content
    content: np.ndarray  # (n, d) L2-normalised content vectors
    popularity: np.ndarray  # (n,) interactions in the training window
    warm: np.ndarray  # (n,) bool: the track had plays when the model was trained
    home_pop_weight: float = 0.2  # home = (1 - w) norm(cf) + w norm(log(1 + popularity))

    def __post_init__(self) -> None:
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.track_ids.tolist())}
        self._prior = minmax(np.log1p(self.popularity)).astype(self.item_cf.dtype)
        norms = np.linalg.norm(self.item_cf, axis=1, keepdims=True)
        self._cf_unit = self.item_cf / np.maximum(norms, 1e-12)

    @property
    def factors(self) -> int:
        return int(self.item_cf.shape[1])

    def indices(self, track_ids: Sequence[str]) -> np.ndarray:
        return np.array([self.index[t] for t in track_ids if t in self.index], dtype=np.int64)

    # -- scores over the whole catalog ------------------------------------------------------------------------

    def cf_scores(self, vector: np.ndarray) -> np.ndarray:
        return self.item_cf @ vector.astype(self.item_cf.dtype, copy=False)

    def content_scores(self, seed: int) -> np.ndarray:
        return self.content @ self.content[seed]

    def cf_neighbour_scores(self, seed: int) -> np.ndarray:
        return self._cf_unit @ self._cf_unit[seed]

    # -- the three surfaces -----------------------------------------------------------------------------------

    def home_scores(self, vector: np.ndarray, cf: np.ndarray | None = None) -> np.ndarray:
        """CF affinity (cold tracks through their regressed factors) blended with the popularity prior."""
        w = self.home_pop_weight
        return (1.0 - w) * minmax(self.cf_scores(vector) if cf is None else cf) + w * self._prior

    def home(self, vector: np.ndarray, k: int, banned: np.ndarray) -> list[dict]:
        cf = self.cf_scores(vector)
        scores = self.home_scores(vector, cf)
        return [
            {
                "track_id": self.track_ids[i],
                "artist_id": self.artist_ids[i],
                "score": float(scores[i]),
                "cf": float(cf[i]),
                "content": None,
            }
            for i in top_k(scores, k, banned)
        ]

    def next(
        self,
        seed: int,
        vector: np.ndarray | None,
        k: int,
        banned: np.ndarray,
        w_cf: float,
        w_content: float,
        pool: int = 200,
    ) -> list[dict]:
        """Candidates from the CF space (the session vector, else the seed's neighbours) and the content space
        (the seed's content neighbours), each min-max normalised over their union, blended ``w_cf / w_content``."""
        banned = np.union1d(banned, [seed]).astype(np.int64)
        cf = self.cf_scores(vector) if vector is not None else self.cf_neighbour_scores(seed)
        content = self.content_scores(seed)
        union = np.union1d(top_k(cf, pool, banned), top_k(content, pool, banned))
        if union.size == 0:
            return []
        cf_n, content_n = minmax(cf[union]), minmax(content[union])
        blended = w_cf * cf_n + w_content * content_n
        order = top_k(blended, k)
        return [
            {
                "track_id": self.track_ids[union[j]],
                "artist_id": self.artist_ids[union[j]],
                "score": float(blended[j]),
                "cf": float(cf_n[j]),
                "content": float(content_n[j]),
            }
            for j in order
        ]

    def similar(self, seed: int, k: int, banned: np.ndarray, w_cf: float, w_content: float) -> list[dict]:
        return self.next(seed, None, k, banned, w_cf, w_content)

    # -- artifact ---------------------------------------------------------------------------------------------

    def save(self, directory: Path, extra_meta: dict | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / ARTIFACT,
            track_ids=self.track_ids.astype(str),
            artist_ids=self.artist_ids.astype(str),
            item_cf=self.item_cf.astype(np.float32),
            content=self.content.astype(np.float32),
            popularity=self.popularity.astype(np.float32),
            warm=self.warm,
        )
        meta = {
            "version": self.version,
            "factors": self.factors,
            "content_dims": int(self.content.shape[1]),
            "tracks": int(self.track_ids.size),
            "home_pop_weight": self.home_pop_weight,
            **(extra_meta or {}),
        }
        (directory / META).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> HybridModel:
        meta = json.loads((directory / META).read_text())
        with np.load(directory / ARTIFACT, allow_pickle=False) as z:
            return cls(
                version=meta["version"],
                track_ids=z["track_ids"],
                artist_ids=z["artist_ids"],
                # float32 as stored: half the memory, twice the speed of the per-request scan
                item_cf=z["item_cf"],
                content=z["content"],
                popularity=z["popularity"].astype(np.float64),
                warm=z["warm"],
                home_pop_weight=float(meta.get("home_pop_weight", 0.2)),
            )
