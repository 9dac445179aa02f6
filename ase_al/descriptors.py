"""The RE descriptor and the Gaussian kernel: shared by KREG, the dipole model and the
learner's farthest-point selection.

RE descriptor: for every atom pair i < j, x_ij = r_ij,eq / r_ij, with r_eq the distances in
an equilibrium geometry (invariant to translation, rotation and, for a fixed atom order, to
nothing else). Kernel: k(x, x') = exp(−|x − x'|² / (2σ²)).
"""

from __future__ import annotations

import numpy as np


def pair_indices(n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of all atom pairs in a fixed order."""
    return np.triu_indices(n_atoms, k=1)


def pair_distances(positions: np.ndarray) -> np.ndarray:
    """Distances / Å of the atom pairs of one structure, ``positions`` (N, 3), in the order
    of :func:`pair_indices`: the ``equilibrium_distances`` that :func:`re_descriptor` takes."""
    i, j = pair_indices(len(positions))
    return np.linalg.norm(positions[i] - positions[j], axis=1)


def re_descriptor(positions: np.ndarray, equilibrium_distances: np.ndarray, jacobian: bool = False):
    """RE descriptors of a batch of structures.

    Parameters
    ----------
    positions : (P, N, 3) array, Å
    equilibrium_distances : (M,) array, Å, for the pairs of :func:`pair_indices`
    jacobian : bool
        Also return the Jacobian ∂x/∂R as (P, M, N, 3).

    Returns
    -------
    x : (P, M) array; and, if asked, the Jacobian.
    """
    i, j = pair_indices(positions.shape[1])
    vectors = positions[:, i] - positions[:, j]  # (P, M, 3)
    distances = np.linalg.norm(vectors, axis=-1)
    x = equilibrium_distances / distances
    if not jacobian:
        return x
    # ∂x_ij/∂R_i = −x_ij (R_i − R_j) / r_ij², and the opposite for R_j
    d_dri = -(x / distances**2)[..., None] * vectors
    jac = np.zeros(positions.shape[:1] + (len(i),) + positions.shape[1:])
    pairs = np.arange(len(i))
    jac[:, pairs, i] = d_dri
    jac[:, pairs, j] = -d_dri
    return x, jac


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_p − b_t|² for all pairs of rows, shape (P, T), clipped at 0 against round-off."""
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(sq, 0.0)


def gaussian_kernel(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """k(a_p, b_t) = exp(−|a_p − b_t|² / (2σ²)) for all pairs, shape (P, T)."""
    return np.exp(-squared_distances(a, b) / (2.0 * sigma**2))
