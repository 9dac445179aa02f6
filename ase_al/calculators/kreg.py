"""KREG: kernel ridge regression with the RE descriptor and a Gaussian kernel.

Descriptor (RE): for every atom pair i < j, x_ij = r_ij,eq / r_ij, with r_eq the distances in
an equilibrium geometry. Kernel: k(x, x') = exp(-|x - x'|² / (2σ²)). Energies are learned
relative to the mean training energy (the prior).

Energies-only training solves (K + λI) α = y. With forces, the gradients enter as derivative
observations of the same Gaussian process: the covariance matrix gains blocks with the
kernel's first and second derivatives, and the model becomes

    E(x) = prior + Σ_b k(x, x_b) [α_b + (x − x_b) · w_b / σ²],   w_b = J_b β_b,

where J_b = ∂x_b/∂R_b is the descriptor Jacobian of training structure b and β_b the
coefficients of its gradient components. Forces are the analytic −∂E/∂R of this expression
for both kinds of model. Units: eV, Å, eV/Å.

(Longer than most modules: one model, whose energies-only and force-fitted training, the
two hyperparameter searches and the analytic prediction share their arrays and are read
together; the descriptor and kernel are in :mod:`ase_al.descriptors`.)
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
from ase import Atoms
from ase.calculators.calculator import all_changes
from tqdm.auto import tqdm

from ase_al.calculators.base import TrainableModel
from ase_al.descriptors import (  # noqa: F401  (re-exported: KREG's public helpers)
    gaussian_kernel,
    pair_distances,
    pair_indices,
    re_descriptor,
    squared_distances,
)
from ase_al.errors import NotTrainedError, check_same_atoms
from ase_al.files import atomic_write

log = logging.getLogger("ase_al")


#: Above this order the threaded OpenBLAS Cholesky of the NumPy/SciPy wheels can crash
#: (segmentation fault inside libscipy_openblas; scipy 1.17.1, numpy 2.4.6, 2–4 threads: a
#: random SPD matrix factorises at n ≤ 15 500 and crashes at n ≥ 15 550, e.g. 560 ethanol
#: structures with forces, n = 15 680; single-threaded it factorises at 20 000): such
#: factorisations run on one BLAS thread, with a margin below the observed limit.
LARGE_MATRIX = 12288


def _blas_guard(n: int):
    """A context in which LAPACK may safely factorise an ``n`` × ``n`` matrix."""
    from contextlib import nullcontext

    if n <= LARGE_MATRIX:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    log.info("linear system of order %d: factorised on one BLAS thread", n)
    return threadpool_limits(limits=1, user_api="blas")


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the OS does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def covariance_with_gradients(
    x: np.ndarray, jac: np.ndarray, sigma: float, block_bytes: int | None = None
) -> np.ndarray:
    """Covariance of [energies; Cartesian gradients] of T structures, (T(1+D), T(1+D)).

    x : (T, M) descriptors; jac : (T, M, D) Jacobians with D = 3N. The gradient-gradient
    part is written straight into the result a few structures at a time (temporaries of at
    most ~``block_bytes``; default: 1/16 of the matrix, at most 256 MiB), so that the peak
    memory is little more than the matrix itself: 1000 ethanol
    structures make a 28 000² matrix of 6.3 GB, and a whole-matrix temporary per term would
    need four times that.
    """
    t, m, d = jac.shape
    s2 = sigma**2
    k = gaussian_kernel(x, x, sigma)
    jx = np.ascontiguousarray(np.tensordot(jac, x, axes=([1], [1])).transpose(0, 2, 1))
    # jx[a, b] = J_a^T x_b, (T, T, D); tensordot is a BLAS matrix product (einsum is not)
    jx_self = np.einsum("aak->ak", jx).copy()  # J_a^T x_a
    # cov(E_a, ∂E_b/∂R_b) = k_ab J_b^T (x_a − x_b) / σ²
    u = (jx.transpose(1, 0, 2) - jx_self[None, :, :]) / s2  # [a, b] = J_b^T(x_a − x_b)/σ²
    # J_a^T(x_a − x_b)/σ², [a, b]; jx is not needed afterwards
    ja_delta = np.subtract(jx_self[:, None, :], jx, out=jx)
    ja_delta /= s2
    cov = np.empty((t * (1 + d), t * (1 + d)))
    cov[:t, :t] = k
    cov[:t, t:] = (k[:, :, None] * u).reshape(t, t * d)
    cov[t:, :t] = cov[:t, t:].T
    # cov(∂E_a/∂R_a, ∂E_b/∂R_b) = k_ab [J_a^T J_b / σ² − (J_a^T δ)(J_b^T δ)^T / σ⁴], δ = x_a − x_b
    if block_bytes is None:
        block_bytes = min(2**28, cov.nbytes // 16)
    rows = max(1, int(block_bytes // (8 * t * d * d)))
    for a0 in range(0, t, rows):
        a1 = min(a0 + rows, t)
        # [a, k, b, l]: the layout of the rows (a, k) and columns (b, l) of the result
        block = np.tensordot(jac[a0:a1], jac, axes=([1], [1]))
        block /= s2
        block -= ja_delta[a0:a1].transpose(0, 2, 1)[:, :, :, None] * u[a0:a1][:, None, :, :]
        block *= k[a0:a1][:, None, :, None]
        cov[t + a0 * d : t + a1 * d, t:] = block.reshape((a1 - a0) * d, t * d)
    return cov


class KREG(TrainableModel):
    """Kernel ridge regression potential (MLatom's KREG) as a trainable ASE calculator.

    Parameters
    ----------
    sigma : float, optional
        Gaussian kernel width (dimensionless, RE-descriptor units). ``None``: optimised
        (energies only: exact leave-one-out; with forces: 5-fold cross-validation over
        structures, see :meth:`train`).
    lambda_ : float, optional
        Regularisation λ added to the kernel diagonal. ``None``: optimised with σ.
    equilibrium : Atoms, optional
        Reference geometry of the RE descriptor; default: the lowest-energy training structure.

    Notes
    -----
    Results: ``energy`` (eV), ``forces`` (eV/Å), and for models trained on energies only the
    Gaussian-process posterior standard deviation ``energy_uncertainty`` (eV).
    """

    implemented_properties = ["energy", "forces", "energy_uncertainty"]
    file_extension = ".npz"
    uses_equilibrium = True

    def __init__(
        self,
        sigma: float | None = None,
        lambda_: float | None = None,
        equilibrium: Atoms | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sigma = sigma
        self.lambda_ = lambda_
        self.equilibrium = None if equilibrium is None else equilibrium.copy()
        self._model: dict | None = None

    # -- learned state ---------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self._model is not None

    @property
    def hyperparameters(self) -> dict:
        """The σ and λ in use (after training: the chosen ones)."""
        if self._model is not None:
            return {"sigma": self._model["sigma"], "lambda_": self._model["lambda_"]}
        return {"sigma": self.sigma, "lambda_": self.lambda_}

    @property
    def validation_rmse(self) -> float | None:
        """Held-out energy RMSE (eV) at the chosen σ, λ of the hyperparameter search, if one
        was run: leave-one-out for a fit to energies, k-fold over structures for a fit to
        energies and forces."""
        return None if self._model is None else self._model.get("validation_rmse")

    @property
    def validation_force_rmse(self) -> float | None:
        """k-fold (over structures) force RMSE (eV/Å) at the chosen σ, λ of a fit to energies
        and forces whose hyperparameters were searched; otherwise None."""
        return None if self._model is None else self._model.get("validation_force_rmse")

    def _check_structures(self, images) -> np.ndarray:
        symbols = self.equilibrium.get_chemical_symbols()
        check_same_atoms(images, self.equilibrium.numbers, whose=f"the model's atoms {symbols}")
        return np.array([atoms.positions for atoms in images])

    def _descriptors(self, positions: np.ndarray, jacobian: bool = False):
        return re_descriptor(positions, self._model["equilibrium_distances"], jacobian)

    # -- training --------------------------------------------------------------------
    def train(
        self,
        images: list[Atoms],
        energies: bool = True,
        forces: bool = False,
        sigma_grid: np.ndarray | None = None,
        lambda_grid: np.ndarray | None = None,
        progress: bool | None = None,
        targets=None,
    ) -> KREG:
        """Fit to ``images``, which carry reference energies (and forces) via their calculators.

        Parameters
        ----------
        images : list of Atoms
            One molecule, same atom order throughout, with ``get_potential_energy()`` (eV) and,
            for ``forces=True``, ``get_forces()`` (eV/Å).
        energies : bool
            Energies are always learned; ``False`` is refused.
        forces : bool
            Also learn forces (the linear system grows to N_train·(1 + 3N_atoms)).
        sigma_grid, lambda_grid : arrays, optional
            Values to search when σ or λ were not fixed. Energies only: exact leave-one-out
            cross-validation for every λ at each σ. With forces: 5-fold cross-validation over
            structures (at most 200 of them), default σ grid the energies-only optimum × 1 to
            4; 9 to 16 grid points of 5 fits each, about a minute for 250 ethanol structures
            on 2 cores.
        progress : bool, optional
            Show a progress bar of the hyperparameter search (default: when interactive).
        targets : array (N_images,), optional
            Learn these values instead of the energies (any scalar property of the
            structures, e.g. an excitation energy); only with ``forces=False``.

        Returns
        -------
        self
        """
        if not energies:
            raise ValueError("KREG always learns energies; energies=False is not supported")
        images = list(images)
        if len(images) < 2:
            raise ValueError(f"KREG needs at least 2 training structures, got {len(images)}")
        if targets is not None:
            if forces:
                raise ValueError("targets other than energies are learned without forces")
            y_energy = np.asarray(targets, dtype=float)
            if y_energy.shape != (len(images),) or not np.all(np.isfinite(y_energy)):
                raise ValueError("targets must be one finite number per image")
        else:
            y_energy = np.array([a.get_potential_energy() for a in images])
        if self.equilibrium is None:
            self.equilibrium = images[int(np.argmin(y_energy))].copy()
            self.equilibrium.calc = None
        self._model = {"equilibrium_distances": pair_distances(self.equilibrium.positions)}
        positions = self._check_structures(images)
        gradients = -np.array([a.get_forces() for a in images]) if forces else None
        order = len(images) * (1 + positions[0].size)
        memory = physical_memory()
        if forces and memory and 8 * order**2 > 0.8 * memory:
            raise MemoryError(
                f"KREG on forces for {len(images)} structures of {len(images[0])} atoms builds "
                f"a {order}² matrix ({8 * order**2 / 1e9:.1f} GB; this machine has "
                f"{memory / 1e9:.1f} GB): train on fewer structures, on energies only "
                "(forces=False), or use ANI or MACE, whose cost grows linearly with the data"
            )
        if forces and order > 30000:
            warnings.warn(
                f"training on forces builds a {order}² matrix: {8 * order**2 / 1e9:.1f} GB of "
                "memory, and its Cholesky factorisation takes minutes",
                stacklevel=2,
            )
        # descriptors (and Jacobians) once: every σ tried and the final fit share them
        if forces:
            x, jac = self._descriptors(positions, jacobian=True)
            jac = jac.reshape(len(x), x.shape[1], -1)
        else:
            x, jac = self._descriptors(positions), None
        sigma, lambda_, validation = self.sigma, self.lambda_, {}
        if (sigma is None or lambda_ is None) and gradients is None:
            sigma, lambda_, loss = self._search(x, y_energy, sigma_grid, lambda_grid, progress)
            validation = {"validation_rmse": loss}
        elif sigma is None or lambda_ is None:
            sigma, lambda_, e_rmse, f_rmse = self._force_fit_search(
                positions, x, jac, y_energy, gradients, sigma_grid, lambda_grid, progress
            )
            validation = {"validation_rmse": e_rmse, "validation_force_rmse": f_rmse}
        self._model.update(self._fit(x, jac, y_energy, gradients, sigma, lambda_))
        self._model.update(validation)
        self.results = {}
        return self

    @staticmethod
    def _linear_system(x, jac, y_energy, gradients, sigma):
        """Covariance matrix, targets and prior (mean energy) of the training data.

        x : (T, M) descriptors; jac : (T, M, 3N) Jacobians, used only with ``gradients``.
        """
        prior = float(y_energy.mean())
        if gradients is None:
            return gaussian_kernel(x, x, sigma), y_energy - prior, prior
        matrix = covariance_with_gradients(x, jac, sigma)
        return matrix, np.concatenate([y_energy - prior, gradients.ravel()]), prior

    def _fit(self, x, jac, y_energy, gradients, sigma, lambda_) -> dict:
        # derivative blocks make the matrix far worse conditioned than K alone: a λ chosen on
        # energies may be too small for it, so raise λ until the factorisation succeeds. The
        # factorisation overwrites the matrix (no second copy of a matrix that can take GBs),
        # so a failed attempt rebuilds it.
        while True:
            matrix, targets, prior = self._linear_system(x, jac, y_energy, gradients, sigma)
            matrix[np.diag_indices_from(matrix)] += lambda_
            try:
                with _blas_guard(len(matrix)):
                    # the transpose of the symmetric matrix is itself, in the Fortran order
                    # LAPACK works in: no copy
                    factor = scipy.linalg.cho_factor(matrix.T, overwrite_a=True, check_finite=False)
                break
            except np.linalg.LinAlgError:
                if lambda_ > 1e-2:
                    raise
                del matrix
                lambda_ *= 10
                log.info("kernel matrix not positive definite; λ raised to %.1e", lambda_)
        with _blas_guard(len(matrix)):
            coefficients = scipy.linalg.cho_solve(factor, targets, check_finite=False)
        t = len(x)
        model = {
            "sigma": float(sigma),
            "lambda_": float(lambda_),
            "prior": prior,
            "x_train": x,
            "alpha": coefficients[:t],
            "w": None,
            "cholesky": None,
        }
        if gradients is None:
            model["cholesky"] = np.triu(factor[0])  # K + λI = UᵀU
            model["signal_variance"] = float(targets @ coefficients / t)
        else:
            beta = coefficients[t:].reshape(t, -1)
            model["w"] = np.einsum("bmk,bk->bm", jac, beta)
        return model

    def _search(self, x, y_energy, sigma_grid, lambda_grid, progress):
        """Choose σ and λ of an energies-only fit by leave-one-out cross-validation.

        For kernel ridge regression the leave-one-out residual of observation i is
        α_i / [(K + λI)⁻¹]_ii, so one eigendecomposition K = QΛQᵀ per σ gives the exact
        LOO error for every λ at O(n²) each: every training point validates, and nothing is
        refactorised per grid point. σ: a coarse log-grid, then golden-section refinement.
        """
        if self.lambda_ is not None:
            lambda_grid = np.array([self.lambda_])
        elif lambda_grid is None:
            lambda_grid = 10.0 ** np.arange(-12.0, -1.9, 0.5)
        cache: dict[float, tuple[float, float]] = {}

        def score(sigma):
            sigma = float(sigma)
            if sigma not in cache:
                cache[sigma] = self._loo(x, y_energy, sigma, lambda_grid)
            return cache[sigma][1]

        if self.sigma is not None:
            grid = [self.sigma]
        elif sigma_grid is not None:
            grid = list(sigma_grid)
        else:
            sample = x[:: max(1, len(x) // 300)]
            typical = np.sqrt(np.median(squared_distances(sample, sample)))
            grid = list(typical * 2.0 ** np.arange(-2.0, 4.1, 1.5))
        bar = tqdm(desc="KREG σ, λ search", disable=None if progress is None else not progress)
        for sigma in grid:
            score(sigma)
            bar.update()
        if len(grid) >= 3 and self.sigma is None and sigma_grid is None:
            ordered = sorted(cache)
            k = int(np.argmin([cache[s][1] for s in ordered]))
            low = np.log(ordered[max(k - 1, 0)])
            high = np.log(ordered[min(k + 1, len(ordered) - 1)])
            golden = (np.sqrt(5.0) - 1.0) / 2.0
            a, b = high - golden * (high - low), low + golden * (high - low)
            for _ in range(5):
                if score(np.exp(a)) < score(np.exp(b)):
                    high, b = b, a
                    a = high - golden * (high - low)
                else:
                    low, a = a, b
                    b = low + golden * (high - low)
                bar.update()
        bar.close()
        sigma = min(cache, key=lambda s: cache[s][1])
        return sigma, cache[sigma][0], cache[sigma][1]

    def _loo(self, x, y_energy, sigma, lambda_grid):
        """(best λ, its leave-one-out energy RMSE in eV) for one σ."""
        matrix, targets, _ = self._linear_system(x, None, y_energy, None, sigma)
        with _blas_guard(len(matrix)):
            eigenvalues, vectors = scipy.linalg.eigh(
                matrix.T, driver="evd", overwrite_a=True, check_finite=False
            )
        projected = vectors.T @ targets
        squared = vectors**2
        best = (np.nan, np.inf)
        for lambda_ in lambda_grid:
            inverse = 1.0 / (eigenvalues + lambda_)
            residuals = (vectors @ (projected * inverse)) / (squared @ inverse)
            loss = float(np.sqrt(np.mean(residuals**2)))
            if loss < best[1]:
                best = (float(lambda_), loss)
        return best

    #: σ of a fit to forces, as multiples of the energies-only leave-one-out σ
    FORCE_SIGMA_FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0)
    FORCE_LAMBDAS = (1e-10, 1e-8, 1e-6, 1e-5, 1e-4)

    def _force_fit_search(
        self,
        positions,
        x,
        jac,
        y_energy,
        gradients,
        sigma_grid,
        lambda_grid,
        progress,
        folds=5,
        max_structures=200,
    ):
        """Choose σ and λ of a fit to energies and forces by k-fold cross-validation over
        structures.

        Each fold holds out whole structures (energy and all force components together), the
        fits to the other folds predict them, and the loss is the geometric mean
        √(RMSE_E · RMSE_F) of the held-out errors (eV, eV/Å), the loss MLatom minimises for its
        force-trained KREG. Leave-one-out over single observations is exact and cheap per λ,
        but it validates a force component while the energy and the other components of the
        same structure are still in the training set, and so favours kernels too narrow for
        new structures; an eigendecomposition of the N(1 + 3N_atoms) matrix per σ also costs
        minutes.

        Default grid: σ = the energies-only leave-one-out σ (an N × N problem, cheap) times
        1, 1.5, 2, 3, 4 (a fit to forces prefers a smoother kernel) and λ from 1e-10 to 1e-4,
        searched coordinate-wise (σ at λ = 1e-6, then λ at the best σ, and again while either
        moves), one Cholesky factorisation per fold and point. At most ``max_structures``
        structures (a seeded subset) take part in the search; the final fit uses all.
        """
        n = len(y_energy)
        if n < 3:
            raise ValueError(
                f"choosing σ and λ for a fit to forces needs at least 3 structures, got {n}; "
                "give sigma and lambda_"
            )
        rng = np.random.default_rng(0)
        chosen = np.sort(rng.permutation(n)[:max_structures])
        x, jac, y_energy, gradients = x[chosen], jac[chosen], y_energy[chosen], gradients[chosen]
        positions = positions[chosen]
        if self.sigma is not None:
            sigmas = [float(self.sigma)]
        elif sigma_grid is not None:
            sigmas = [float(v) for v in sigma_grid]
        else:
            base = self._search(x, y_energy, None, None, False)[0]
            sigmas = [base * factor for factor in self.FORCE_SIGMA_FACTORS]
        if self.lambda_ is not None:
            lambdas = [float(self.lambda_)]
        elif lambda_grid is not None:
            lambdas = [float(v) for v in lambda_grid]
        else:
            lambdas = list(self.FORCE_LAMBDAS)
        parts = np.array_split(rng.permutation(len(y_energy)), min(folds, len(y_energy)))
        # held-out (energy RMSE, force RMSE) per grid point (i, j) already fitted
        errors: dict[tuple[int, int], tuple[float, float]] = {}
        bar = tqdm(
            desc="KREG σ, λ search (forces, cross-validation)",
            disable=None if progress is None else not progress,
        )

        def loss(i, j):
            if (i, j) not in errors:
                e_sq, f_sq = 0.0, 0.0
                for held in parts:
                    kept = np.setdiff1d(np.arange(len(y_energy)), held)
                    model = self._fit(
                        x[kept], jac[kept], y_energy[kept], gradients[kept], sigmas[i], lambdas[j]
                    )
                    energies, forces = self._evaluate(model, positions[held])
                    e_sq += np.sum((energies - y_energy[held]) ** 2)
                    f_sq += np.sum((forces + gradients[held]) ** 2)
                errors[i, j] = (
                    float(np.sqrt(e_sq / len(y_energy))),
                    float(np.sqrt(f_sq / gradients.size)),
                )
                bar.update()
            return float(np.sqrt(errors[i, j][0] * errors[i, j][1]))

        i = len(sigmas) // 2 if self.sigma is None and sigma_grid is None else 0
        j = lambdas.index(1e-6) if 1e-6 in lambdas else len(lambdas) // 2
        for _ in range(4):
            i_new = min(range(len(sigmas)), key=lambda k: loss(k, j))
            j_new = min(range(len(lambdas)), key=lambda k: loss(i_new, k))
            if (i_new, j_new) == (i, j):
                break
            i, j = i_new, j_new
        bar.close()
        log.info(
            "KREG with forces: σ = %.3g, λ = %.0e (%d-fold loss %.3g, %d grid points)",
            sigmas[i],
            lambdas[j],
            len(parts),
            loss(i, j),
            len(errors),
        )
        return (sigmas[i], lambdas[j]) + errors[i, j]

    # -- prediction ------------------------------------------------------------------
    def _evaluate(self, model, positions, forces=True, chunk=2000):
        energies, all_forces = [], []
        for start in range(0, len(positions), chunk):
            block = positions[start : start + chunk]
            if forces:
                x, jac = self._descriptors(block, jacobian=True)
            else:
                x = self._descriptors(block)
            k = gaussian_kernel(x, model["x_train"], model["sigma"])
            s2 = model["sigma"] ** 2
            weights = np.broadcast_to(model["alpha"], k.shape)
            if model["w"] is not None:
                # (x_p − x_b) · w_b / σ²
                weights = (
                    weights + (x @ model["w"].T - np.sum(model["x_train"] * model["w"], 1)) / s2
                )
            kc = k * weights
            energies.append(model["prior"] + kc.sum(1))
            if forces:
                # ∂E/∂x_p = Σ_b k_pb [−(x_p − x_b) c_pb / σ² + w_b / σ²]
                de_dx = (kc @ model["x_train"] - kc.sum(1)[:, None] * x) / s2
                if model["w"] is not None:
                    de_dx += k @ model["w"] / s2
                all_forces.append(-np.einsum("pm,pmak->pak", de_dx, jac))
        energy = np.concatenate(energies)
        return energy, (np.concatenate(all_forces) if forces else None)

    def predict(self, images: list[Atoms], forces: bool = True, uncertainty: bool = False) -> dict:
        """Energies (P,) in eV and forces (P, N, 3) in eV/Å for a batch of structures.

        With ``uncertainty=True`` (models trained on energies only) also the posterior
        standard deviation of each energy, ``energy_uncertainty`` (P,) in eV.
        """
        if not self.is_trained:
            raise NotTrainedError(self)
        positions = self._check_structures(images)
        energy, force = self._evaluate(self._model, positions, forces)
        result = {"energy": energy}
        if forces:
            result["forces"] = force
        if uncertainty:
            result["energy_uncertainty"] = self._posterior_std(positions)
        return result

    def _posterior_std(self, positions):
        model = self._model
        if model["cholesky"] is None:
            raise ValueError(
                "posterior uncertainty is available for models trained on energies only"
            )
        k = gaussian_kernel(self._descriptors(positions), model["x_train"], model["sigma"])
        v = scipy.linalg.solve_triangular(model["cholesky"], k.T, lower=False, trans="T")
        variance = np.clip(1.0 - np.sum(v**2, axis=0), 0.0, None)
        return np.sqrt(model["signal_variance"] * variance)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        wants_uncertainty = "energy_uncertainty" in properties
        result = self.predict([self.atoms], forces=True, uncertainty=wants_uncertainty)
        self.results["energy"] = float(result["energy"][0])
        self.results["forces"] = result["forces"][0]
        if wants_uncertainty:
            self.results["energy_uncertainty"] = float(result["energy_uncertainty"][0])

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the trained model to ``path`` (a NumPy ``.npz`` archive)."""
        if not self.is_trained:
            raise NotTrainedError(self, "save it")
        arrays = {k: v for k, v in self._model.items() if isinstance(v, np.ndarray)}
        meta = {k: v for k, v in self._model.items() if not isinstance(v, np.ndarray)}
        meta.update(
            format="ase-al KREG 1",
            symbols=self.equilibrium.get_chemical_symbols(),
        )
        # a file handle, because np.savez would append .npz to a str path
        with atomic_write(path) as partial, open(partial, "wb") as handle:
            np.savez(
                handle, meta=json.dumps(meta), equilibrium=self.equilibrium.positions, **arrays
            )

    @classmethod
    def load(cls, path: str | Path) -> KREG:
        """A KREG model written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in data.files if k not in ("meta", "equilibrium")}
                positions = data["equilibrium"]
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(
                f"{path} is not a KREG model file written by KREG.save: {err}"
            ) from None
        if meta.get("format") != "ase-al KREG 1":
            raise ValueError(f"{path} is not a KREG model file (format {meta.get('format')!r})")
        equilibrium = Atoms(meta.pop("symbols"), positions=positions)
        model = cls(
            sigma=meta["sigma"],
            lambda_=meta["lambda_"],
            equilibrium=equilibrium,
        )
        meta.pop("format")
        model._model = {**meta, **arrays}
        for key in ("w", "cholesky"):
            model._model.setdefault(key, None)
        return model
