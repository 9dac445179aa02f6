"""Which structures count as uncertain, and which of them are labelled.

The threshold rule is MLatom's m+3mad: the median of the uncertainties on held-out
structures plus a multiple of their median absolute deviation. From a pool larger than
``new_points``, structures are picked at random (MLatom's way) or by farthest-point sampling
in the RE descriptor (:func:`farthest_points`).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from ase_al.descriptors import pair_distances, re_descriptor, squared_distances


def threshold_from(uncertainties: np.ndarray, multiplier: float) -> float | list[float]:
    """median + multiplier · MAD (MLatom's m+3mad) over axis 0: one value, or one per state
    for (P, n_states) uncertainties (eV)."""
    median = np.median(uncertainties, axis=0)
    value = median + multiplier * np.median(np.abs(uncertainties - median), axis=0)
    return float(value) if np.ndim(value) == 0 else [float(v) for v in value]


def format_threshold(threshold) -> str:
    return " ".join(f"{t:.5f}" for t in np.atleast_1d(threshold))


def farthest_points(candidates: np.ndarray, reference: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` of the ``candidates`` (rows: descriptors) chosen greedily, each the one
    farthest (Euclidean) from ``reference`` and the candidates chosen before it."""
    if n >= len(candidates):
        return np.arange(len(candidates))
    nearest = np.full(len(candidates), np.inf)
    if len(reference):
        nearest = np.sqrt(squared_distances(candidates, reference)).min(1)
    chosen = []
    for _ in range(n):
        k = int(np.argmax(nearest))
        chosen.append(k)
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[k], axis=1))
        nearest[k] = -np.inf
    return np.array(chosen)


def choose(
    pool: list[Atoms],
    n: int,
    method: str,
    rng: np.random.Generator,
    labelled: list[Atoms],
    equilibrium: Atoms,
) -> list[Atoms]:
    """``n`` structures of ``pool`` (all of them if it is not larger), in pool order."""
    if len(pool) <= n:
        return list(pool)
    if method == "farthest":
        distances = pair_distances(equilibrium.positions)
        keep = farthest_points(
            re_descriptor(np.array([a.positions for a in pool]), distances),
            re_descriptor(np.array([a.positions for a in labelled]), distances),
            n,
        )
    else:
        keep = rng.choice(len(pool), n, replace=False)
    return [pool[i] for i in np.sort(keep)]


__all__ = ["choose", "farthest_points", "format_threshold", "threshold_from"]
