"""The :class:`Slice` result: a 1-D or 2-D loss slice, JSON / NPZ round trip (atomic writes)."""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from landscape.errors import check
from landscape.io import atomic_write, from_json_array, from_json_float, json_safe

__all__ = ["Slice", "load_slice", "LOSS_CONVENTION", "TRAIN_LOSS_CONVENTION", "FORMAT"]

LOSS_CONVENTION = "L_k(x_k) = ||Phi_{k->K}(x_k; y, theta) - x*||^2, sum over entries, one sample"
TRAIN_LOSS_CONVENTION = "L(theta) = mean over samples of ||f_theta(y) - x*||^2 (sum over entries)"

FORMAT = "landscape-slice/1"


@dataclass(frozen=True)
class Slice:
    r"""A 1-D or 2-D slice of a loss.

    ``values[i]`` (1-D) or ``values[i, j]`` (2-D) is the loss at
    ``center + coords[0][i] * d_1 (+ coords[1][j] * d_2)``; ``center_value`` is the loss at the centre
    itself (computed separately, not read off the grid).  ``directions[i]`` holds the kind, the norm
    :math:`\|d_i\|`, the seed and notes of direction ``i``; ``vectors`` (n_dirs, n) are the flattened
    directions (kept in memory and in NPZ files, left out of ``to_dict()`` unless asked for).
    """

    space: str
    coords: tuple[np.ndarray, ...]
    values: np.ndarray
    center_value: float
    directions: tuple[dict[str, Any], ...]
    k: int | None
    sample: int | None
    seed: int
    loss: str
    dtype: str
    method: str
    chunk_size: int
    n_evals: int
    wall_time: float
    settings: dict[str, Any] = field(default_factory=dict)
    vectors: np.ndarray | None = None

    @property
    def ndim(self) -> int:
        """The number of directions: 1 for a line, 2 for a plane."""
        return len(self.coords)

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid shape, one size per direction."""
        return tuple(len(c) for c in self.coords)

    def value_at_origin(self) -> float:
        """The grid value at the origin (all coordinates 0); ``nan`` if 0 is not a grid point."""
        idx = []
        for c in self.coords:
            hits = np.flatnonzero(c == 0.0)
            if len(hits) == 0:
                return math.nan
            idx.append(int(hits[0]))
        return float(self.values[tuple(idx)])

    def to_dict(self, *, include_vectors: bool = False) -> dict[str, Any]:
        """The slice as a JSON-safe dict; the direction vectors only with ``include_vectors``."""
        out = {
            "kind": "Slice",
            "format": FORMAT,
            "space": self.space,
            "coords": [json_safe(c) for c in self.coords],
            "values": json_safe(self.values),
            "center_value": json_safe(self.center_value),
            "directions": json_safe(list(self.directions)),
            "k": self.k,
            "sample": self.sample,
            "seed": self.seed,
            "loss": self.loss,
            "dtype": self.dtype,
            "method": self.method,
            "chunk_size": self.chunk_size,
            "n_evals": self.n_evals,
            "wall_time": self.wall_time,
            "settings": json_safe(self.settings),
        }
        if include_vectors and self.vectors is not None:
            out["vectors"] = json_safe(self.vectors)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Slice:
        """Rebuild from :meth:`to_dict` output (vectors when they were written)."""
        check(d.get("kind", "Slice") == "Slice", f"kind={d.get('kind')!r}: expected a Slice record")

        vec = d.get("vectors")
        return cls(
            space=d["space"],
            coords=tuple(np.asarray(c, dtype=np.float64) for c in d["coords"]),
            values=from_json_array(d["values"]),
            center_value=from_json_float(d["center_value"]),
            directions=tuple(dict(x) for x in d["directions"]),
            k=d.get("k"),
            sample=d.get("sample"),
            seed=int(d["seed"]),
            loss=d.get("loss", ""),
            dtype=d.get("dtype", ""),
            method=d.get("method", ""),
            chunk_size=int(d.get("chunk_size", 0)),
            n_evals=int(d.get("n_evals", 0)),
            wall_time=float(d.get("wall_time", 0.0)),
            settings=dict(d.get("settings", {})),
            vectors=None if vec is None else np.asarray(vec, dtype=np.float64),
        )

    def save_npz(self, path: str | os.PathLike) -> str:
        """Write arrays (coords, values, vectors) and the JSON metadata to ``path`` (atomically)."""
        path = os.fspath(path)
        data = self.npz_bytes()
        atomic_write(path, lambda fh: fh.write(data))
        return path

    def npz_bytes(self) -> bytes:
        """The bytes :meth:`save_npz` writes: arrays (coords, values, vectors) and the JSON metadata."""
        meta = self.to_dict()
        arrays: dict[str, np.ndarray] = {"values": np.asarray(self.values)}
        for i, c in enumerate(self.coords):
            arrays[f"coord{i}"] = np.asarray(c)
        if self.vectors is not None:
            arrays["vectors"] = np.asarray(self.vectors)
        meta.pop("values")
        meta.pop("coords")
        arrays["meta"] = np.array(json.dumps(meta))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> Slice:
        """Read a slice written by :meth:`save_npz` (coordinates and values as arrays, the rest from its JSON metadata)."""
        with np.load(os.fspath(path), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            n = sum(1 for key in z.files if key.startswith("coord"))
            meta["coords"] = [z[f"coord{i}"] for i in range(n)]
            meta["values"] = z["values"]
            s = cls.from_dict({**meta, "values": [0.0]})
            vec = z["vectors"] if "vectors" in z.files else None
            return replace(s, values=np.asarray(z["values"], dtype=np.float64), vectors=vec)


def load_slice(path: str | os.PathLike) -> Slice:
    """Load a slice saved as ``.npz`` (:meth:`Slice.save_npz`) or ``.json`` (``to_dict``)."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        return Slice.load_npz(path)
    with open(path, encoding="utf-8") as fh:
        d = json.load(fh)
    if "slice" in d and isinstance(d["slice"], dict):
        d = d["slice"]
    return Slice.from_dict(d)
