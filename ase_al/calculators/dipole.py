"""An ML dipole model through atomic charges: IR spectra from ML potentials.

Each atom's charge is a kernel expansion in the KREG descriptor of the whole molecule,
q_i(x) = Σ_m k(x, x_m) A_mi, shifted so that the charges add up to the molecular charge Q; the
dipole is μ = Σ_i q_i r_i. The dipole rotates with the molecule because the charges are
invariant and the positions carry the direction — unlike a model of the Cartesian components.
The coefficients A are fitted to reference dipoles by kernel ridge regression (dual form, one
solve of size 3·N_train), σ and λ chosen on a held-out fifth of the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from ase_al.calculators.base import TrainableModel
from ase_al.descriptors import gaussian_kernel, pair_distances, re_descriptor
from ase_al.errors import NotTrainedError, check_same_atoms
from ase_al.files import atomic_write
from ase_al.io import first_structure

SIGMA_GRID = (0.5, 1.0, 2.0, 4.0, 8.0)
LAMBDA_GRID = (1e-8, 1e-6, 1e-4, 1e-2)


class KREGDipole(TrainableModel):
    """Dipole moments (e·Å) and atomic charges (e) of one molecule from a charge model.

    Parameters
    ----------
    sigma, lambda_ : float, optional
        Kernel width and regularisation; ``None``: chosen on a validation split.
    charge : int
        Total molecular charge Q (the charges add up to it).

    Notes
    -----
    Results: ``dipole`` (3,) in e·Å, ``charges`` (N,) in e.
    """

    implemented_properties = ["dipole", "charges"]
    file_extension = ".npz"

    def __init__(self, sigma=None, lambda_=None, charge: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.sigma, self.lambda_, self.charge = sigma, lambda_, int(charge)
        self._model: dict | None = None
        #: RMSE (e·Å, per component) on the held-out fifth of the σ/λ search
        self.validation_rmse: float | None = None

    def _descriptors(self, images) -> tuple[np.ndarray, np.ndarray]:
        model = self._model
        check_same_atoms(images, model["numbers"], whose="the model's atoms")
        positions = np.array([atoms.positions for atoms in images])
        return re_descriptor(positions, model["equilibrium_distances"]), positions

    @staticmethod
    def _design(k: np.ndarray, centered: np.ndarray) -> np.ndarray:
        """Rows (p, c): μ_pc = Σ_mi k_pm C_pic A_mi, as a (3P, M·N) matrix."""
        p, m = k.shape
        n = centered.shape[1]
        return np.einsum("pm,pic->pcmi", k, centered).reshape(3 * p, m * n)

    def _fit(self, x, centered, target, sigma, lambda_):
        k = gaussian_kernel(x, x, sigma)
        phi = self._design(k, centered)
        gram = phi @ phi.T
        gram[np.diag_indices_from(gram)] += lambda_ * np.trace(gram) / len(gram)
        dual = np.linalg.solve(gram, target.ravel())
        return (phi.T @ dual).reshape(len(x), centered.shape[1])

    @property
    def is_trained(self) -> bool:
        return self._model is not None

    def train(self, images: list[Atoms], dipoles=None, *, forces: bool = False) -> KREGDipole:
        """Fit to reference dipoles: ``dipoles`` (P, 3) in e·Å, or each image's
        ``get_dipole_moment()``. (``forces``: part of the model contract; a dipole model
        learns no forces, so only ``False`` is accepted.)"""
        if forces:
            raise ValueError("KREGDipole learns dipole moments, not forces: use forces=False")
        images = list(images)
        if len(images) < 5:
            raise ValueError("a dipole model needs at least 5 structures")
        target = np.array(
            [a.get_dipole_moment() for a in images] if dipoles is None else dipoles, float
        )
        if target.shape != (len(images), 3):
            raise ValueError("dipoles must be (N_images, 3)")
        eq = images[0]
        self._model = {
            "numbers": eq.numbers.copy(),
            "equilibrium_distances": pair_distances(eq.positions),
        }
        x, positions = self._descriptors(images)
        centers = positions.mean(axis=1, keepdims=True)
        centered = positions - centers
        target = target - self.charge * centers[:, 0, :]
        sigma, lambda_ = self.sigma, self.lambda_
        if sigma is None or lambda_ is None:
            order = np.random.default_rng(0).permutation(len(images))
            cut = max(1, int(0.8 * len(images)))
            fit, val = order[:cut], order[cut:]
            best = None
            for s in SIGMA_GRID if sigma is None else (sigma,):
                for lam in LAMBDA_GRID if lambda_ is None else (lambda_,):
                    coef = self._fit(x[fit], centered[fit], target[fit], s, lam)
                    k = gaussian_kernel(x[val], x[fit], s)
                    predicted = np.einsum("pic,pi->pc", centered[val], k @ coef)
                    error = np.sqrt(np.mean((predicted - target[val]) ** 2))
                    if best is None or error < best[0]:
                        best = (error, s, lam)
            self.validation_rmse, sigma, lambda_ = best
        self._model.update(
            sigma=sigma,
            lambda_=lambda_,
            x_train=x,
            coefficients=self._fit(x, centered, target, sigma, lambda_),
        )
        self.results = {}
        return self

    def predict(self, images: list[Atoms], *, forces: bool = False) -> dict:
        """``dipole`` (P, 3) in e·Å and ``charges`` (P, N) in e (no energies or forces)."""
        if self._model is None:
            raise NotTrainedError(self)
        model = self._model
        x, positions = self._descriptors(list(images))
        raw = gaussian_kernel(x, model["x_train"], model["sigma"]) @ model["coefficients"]
        n = positions.shape[1]
        charges = raw - raw.mean(axis=1, keepdims=True) + self.charge / n
        return {"dipole": np.einsum("pi,pic->pc", charges, positions), "charges": charges}

    def calculate(self, atoms=None, properties=("dipole",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        result = self.predict([self.atoms])
        self.results = {"dipole": result["dipole"][0], "charges": result["charges"][0]}

    def save(self, path: str | Path) -> None:
        if self._model is None:
            raise NotTrainedError(self, "save it")
        with atomic_write(path) as partial, open(partial, "wb") as handle:
            np.savez(
                handle, charge=self.charge, **{k: np.asarray(v) for k, v in self._model.items()}
            )

    @classmethod
    def load(cls, path: str | Path) -> KREGDipole:
        try:
            with np.load(path) as data:
                stored = {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise ValueError(f"{path} is not a dipole model file: {err}") from None
        model = cls(
            sigma=float(stored["sigma"]),
            lambda_=float(stored["lambda_"]),
            charge=int(stored.pop("charge")),
        )
        stored["sigma"], stored["lambda_"] = float(stored["sigma"]), float(stored["lambda_"])
        model._model = stored
        return model


class WithDipole(Calculator):
    """An energy model's ``energy`` and ``forces`` with a dipole model's ``dipole`` (e·Å) and
    ``charges``: what IR intensities from ML potentials need (``ase_al.freq`` differentiates
    the dipole along the normal modes). ``WithDipole(kreg, kreg_dipole)``."""

    implemented_properties = ["energy", "forces", "dipole", "charges"]

    def __init__(self, model, dipole_model, **kwargs):
        super().__init__(**kwargs)
        self.model, self.dipole_model = model, dipole_model

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from ase_al.calculators.committee import predict_batch

        super().calculate(atoms, properties, system_changes)
        self.results = first_structure(predict_batch(self.model, [self.atoms], forces=True))
        if {"dipole", "charges"} & set(properties):
            dipole = self.dipole_model.predict([self.atoms])
            self.results.update(dipole=dipole["dipole"][0], charges=dipole["charges"][0])
