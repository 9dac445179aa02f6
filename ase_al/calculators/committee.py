"""Several models as one calculator: a weighted prediction plus their spread as uncertainty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes

from ase_al.calculators._members import (
    load_members,
    read_manifest,
    save_members,
    write_manifest,
)
from ase_al.calculators.base import TrainableModel, is_trainable
from ase_al.io import first_structure

FORMAT = "ase-al Committee 1"


def predict_batch(model, images: list[Atoms], forces: bool = True) -> dict:
    """``model.predict(images)`` where the model has it, else one calculation per structure.

    Returns ``energy`` (P,) in eV and, if asked, ``forces`` (P, N, 3) in eV/Å.
    """
    if hasattr(model, "predict"):
        return model.predict(images, forces=forces)
    energies, all_forces = [], []
    for atoms in images:
        work = atoms.copy()
        work.calc = model
        energies.append(work.get_potential_energy())
        if forces:
            all_forces.append(work.get_forces())
    result = {"energy": np.array(energies)}
    if forces:
        result["forces"] = np.array(all_forces)
    return result


def member_weights(n_members: int, weights, spread: str) -> np.ndarray:
    """Checked, normalised weights of a committee of ``n_members`` (equal by default)."""
    if n_members < 2:
        raise ValueError("a committee needs at least two members")
    if spread not in ("std", "range"):
        raise ValueError(f"spread must be 'std' or 'range', got {spread!r}")
    weights = np.ones(n_members) if weights is None else np.asarray(weights, float)
    if weights.shape != (n_members,) or weights.sum() <= 0 or np.any(weights < 0):
        raise ValueError("weights must be one non-negative number per member, not all zero")
    return weights / weights.sum()


def member_spread(values: np.ndarray, spread: str) -> np.ndarray:
    """Spread over axis 0 (the members): max − min (``"range"``) or standard deviation."""
    if spread == "range":
        return values.max(axis=0) - values.min(axis=0)
    return values.std(axis=0)


class Committee(TrainableModel):
    """Members' weighted mean as ``energy``/``forces``, their spread as the uncertainty.

    Parameters
    ----------
    calculators : list
        Trained models or any ASE calculators (same molecule).
    weights : sequence of float, optional
        Weights of the members in the returned energy and forces (normalised); default equal.
    spread : {"std", "range"}
        ``"std"``: standard deviation of the members (ddof=0); ``"range"``: max − min, which
        for two members is |E₁ − E₂|.
    train_forces : sequence of bool, optional
        Per member: whether :meth:`train` fits it to forces as well as energies (default: all).
        An untrained committee is a recipe the :class:`~ase_al.ActiveLearner` accepts as
        ``model``: every iteration trains a fresh copy of it.

    Notes
    -----
    Results: ``energy`` (eV), ``forces`` (eV/Å), ``energy_uncertainty`` (eV) and
    ``forces_uncertainty`` (eV/Å, per atom and component).
    """

    implemented_properties = ["energy", "forces", "energy_uncertainty", "forces_uncertainty"]
    #: saved as a directory
    file_extension = ""

    def __init__(self, calculators, weights=None, spread: str = "std", train_forces=None, **kwargs):
        super().__init__(**kwargs)
        self.weights = member_weights(len(calculators), weights, spread)
        self.members = list(calculators)
        self.spread = spread
        train_forces = [True] * len(self.members) if train_forces is None else train_forces
        if len(train_forces) != len(self.members):
            raise ValueError("train_forces must have one entry per member")
        self.train_forces = [bool(f) for f in train_forces]

    @classmethod
    def physics_informed(cls, main, auxiliary) -> Committee:
        """MLatom's pair: the main model (energies + forces) predicts, |E_main − E_aux| is the
        uncertainty, the auxiliary model having learned energies only."""
        return cls(
            [main, auxiliary], weights=[1.0, 0.0], spread="range", train_forces=[True, False]
        )

    def train(self, images: list[Atoms], forces: bool = True, **kwargs) -> Committee:
        """Train every member on ``images`` (energies, and forces where ``train_forces`` and
        ``forces`` say so); members that differ only by seed or hyperparameters differ after.
        Returns the committee."""
        for member, member_forces in zip(self.members, self.train_forces, strict=True):
            if not is_trainable(member):
                raise TypeError(
                    f"committee member {type(member).__name__} is not a trainable model "
                    "(ase_al.calculators.TrainableModel)"
                )
            member.train(images, forces=forces and member_forces, **kwargs)
        self.results = {}
        return self

    @property
    def is_trained(self) -> bool:
        return all(m.is_trained for m in self.members if is_trainable(m))

    @property
    def validation_rmse(self) -> float | None:
        """The first member's held-out energy error (eV) that its training measured."""
        errors = [m.validation_rmse for m in self.members if is_trainable(m)]
        return next((float(e) for e in errors if e is not None), None)

    def clone(self, **changes) -> Committee:
        """The same recipe, untrained: every trainable member cloned (with ``changes``),
        weights and spread kept."""
        return type(self)(
            [m.clone(**changes) if is_trainable(m) else m for m in self.members],
            weights=list(self.weights),
            spread=self.spread,
            train_forces=self.train_forces,
        )

    def save(self, path: str | Path) -> None:
        """Write the committee as a directory: ``committee.json`` and one file per member."""
        if not all(is_trainable(m) for m in self.members):
            raise TypeError("only a committee of trainable models can be saved")
        path = Path(path)
        meta = {
            "format": FORMAT,
            "weights": [float(w) for w in self.weights],
            "spread": self.spread,
            "train_forces": self.train_forces,
            "members": save_members(path, self.members, "member"),
        }
        write_manifest(path, "committee.json", meta)

    @classmethod
    def load(cls, path: str | Path) -> Committee:
        """A committee written by :meth:`save`."""
        meta = read_manifest(Path(path), "committee.json", FORMAT)
        members = load_members(Path(path), meta["members"])
        return cls(members, meta["weights"], meta["spread"], meta["train_forces"])

    def _spread(self, values: np.ndarray) -> np.ndarray:
        return member_spread(values, self.spread)

    def predict(self, images: list[Atoms], forces: bool = True, uncertainty: bool = True) -> dict:
        """Batched prediction: ``energy`` (P,), ``forces`` (P, N, 3) and, with
        ``uncertainty``, ``energy_uncertainty`` (P,) and ``forces_uncertainty`` (P, N, 3)."""
        needed = [
            m for m, w in zip(self.members, self.weights, strict=True) if w > 0 or uncertainty
        ]
        outputs = [predict_batch(m, images, forces) for m in needed]
        used_weights = [w for w in self.weights if w > 0 or uncertainty]
        energies = np.array([o["energy"] for o in outputs])
        result = {"energy": np.tensordot(used_weights, energies, axes=1)}
        if forces:
            all_forces = np.array([o["forces"] for o in outputs])
            result["forces"] = np.tensordot(used_weights, all_forces, axes=1)
        if uncertainty:
            result["energy_uncertainty"] = self._spread(energies)
            if forces:
                result["forces_uncertainty"] = self._spread(all_forces)
        return result

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = first_structure(self.predict([self.atoms], forces=True, uncertainty=True))
