"""One trained model with an uncertainty from elsewhere: the ``"variance"``, ``"distance"``
and user-function kinds of the active learner's uncertainty (the ``"physics-informed"`` and
``"committee"`` kinds are :class:`~ase_al.calculators.Committee` s).

    model = UncertainModel(main, PosteriorStd(gp))          # gp: a KREG fitted to energies
    model = UncertainModel(main, NearestDistance.fit(main, images))
    model = UncertainModel(main, FunctionUncertainty(my_uq))  # my_uq(main, images) -> (P,) eV

Every estimator reports in eV, so that one threshold rule serves them all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from ase_al.descriptors import pair_distances, re_descriptor, squared_distances
from ase_al.files import atomic_write
from ase_al.io import first_structure

FORMAT = "ase-al UncertainModel 1"


class PosteriorStd:
    """The posterior standard deviation (eV) of a Gaussian process: a
    :class:`~ase_al.calculators.KREG` trained on energies only, its signal variance the
    maximum-likelihood estimate from the training energies. It grows from ~0 at the training
    structures to the prior's standard deviation far from them."""

    kind = "variance"

    def __init__(self, gp):
        self.gp = gp

    def __call__(self, model, images: list[Atoms]) -> np.ndarray:
        return self.gp.predict(images, forces=False, uncertainty=True)["energy_uncertainty"]

    def save(self, folder: Path) -> dict:
        self.gp.save(folder / "variance.npz")
        return {"file": "variance.npz"}

    @classmethod
    def load(cls, folder: Path, meta: dict) -> PosteriorStd:
        from ase_al.calculators.kreg import KREG

        return cls(KREG.load(folder / meta["file"]))


class NearestDistance:
    """``scale`` × the Euclidean distance, in KREG's RE descriptor (r_eq/r of every atom pair),
    from a structure to the nearest training structure.

    :meth:`fit` sets ``scale`` (eV per unit of RE distance) so that on the training data the
    leave-one-out nearest distances have the RMS of the model's own held-out energy error
    (its ``validation_rmse``): a distance typical of the data then reads as the error typical
    of the model, and the uncertainty grows linearly away from the data.
    """

    kind = "distance"

    def __init__(self, equilibrium: Atoms, descriptors: np.ndarray, scale: float):
        self.equilibrium = equilibrium
        self.distances = pair_distances(equilibrium.positions)
        self.descriptors = np.asarray(descriptors, float)
        self.scale = float(scale)

    @classmethod
    def fit(cls, model, images: list[Atoms], equilibrium: Atoms) -> NearestDistance:
        if len(images) < 2:
            raise ValueError("the distance uncertainty needs at least two training structures")
        rmse = getattr(model, "validation_rmse", None)
        if rmse is None:
            raise ValueError(
                f"the distance uncertainty is scaled by the model's held-out error, and "
                f"{type(model).__name__} did not measure one (validation_rmse is None)"
            )
        x = re_descriptor(
            np.array([a.positions for a in images]), pair_distances(equilibrium.positions)
        )
        squared = squared_distances(x, x)
        np.fill_diagonal(squared, np.inf)
        nearest = np.sqrt(squared.min(axis=1))
        typical = float(np.sqrt(np.mean(nearest**2)))
        if typical <= 0.0:
            raise ValueError("the training structures are all identical: no distance scale")
        return cls(equilibrium, x, float(rmse) / typical)

    def raw(self, images: list[Atoms]) -> np.ndarray:
        """The unscaled nearest RE distances of ``images``."""
        x = re_descriptor(np.array([a.positions for a in images]), self.distances)
        return np.sqrt(squared_distances(x, self.descriptors).min(axis=1))

    def __call__(self, model, images: list[Atoms]) -> np.ndarray:
        return self.scale * self.raw(images)

    def save(self, folder: Path) -> dict:
        with atomic_write(folder / "distance.npz") as partial, open(partial, "wb") as handle:
            np.savez(
                handle,
                descriptors=self.descriptors,
                equilibrium=self.equilibrium.positions,
                numbers=self.equilibrium.numbers,
            )
        return {"file": "distance.npz", "scale": self.scale}

    @classmethod
    def load(cls, folder: Path, meta: dict) -> NearestDistance:
        with np.load(folder / meta["file"]) as data:
            equilibrium = Atoms(data["numbers"], positions=data["equilibrium"])
            return cls(equilibrium, data["descriptors"], meta["scale"])


class FunctionUncertainty:
    """A user's function ``uq(model, images) -> (P,)`` in eV as the uncertainty. It cannot be
    saved; loading a saved model of this kind needs the function again."""

    kind = "callable"

    def __init__(self, function):
        if not callable(function):
            raise TypeError(f"an uncertainty function must be callable, got {function!r:.60}")
        self.function = function

    def __call__(self, model, images: list[Atoms]) -> np.ndarray:
        values = np.asarray(self.function(model, images), float)
        if values.shape != (len(images),) or not np.all(np.isfinite(values)):
            raise ValueError(
                f"the uncertainty function {getattr(self.function, '__name__', self.function)} "
                f"must return one finite number (eV) per structure: {len(images)} structures, "
                f"got shape {values.shape}"
            )
        return values

    def save(self, folder: Path) -> dict:
        return {"function": getattr(self.function, "__qualname__", repr(self.function))}


ESTIMATORS = {"variance": PosteriorStd, "distance": NearestDistance}


class UncertainModel(Calculator):
    """A trained model's ``energy`` and ``forces`` with ``energy_uncertainty`` (eV) from an
    estimator (:class:`PosteriorStd`, :class:`NearestDistance`, :class:`FunctionUncertainty`).

    ``members`` is ``[model]``, so that ``learned.members[0]`` is the main model whatever the
    kind of uncertainty, as for a :class:`~ase_al.calculators.Committee`.
    """

    implemented_properties = ["energy", "forces", "energy_uncertainty"]

    def __init__(self, model, estimator, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.estimator = estimator

    @property
    def members(self) -> list:
        return [self.model]

    @property
    def validation_rmse(self) -> float | None:
        return getattr(self.model, "validation_rmse", None)

    def predict(self, images: list[Atoms], forces: bool = True, uncertainty: bool = True) -> dict:
        """``energy`` (P,) eV, ``forces`` (P, N, 3) eV/Å and, with ``uncertainty``,
        ``energy_uncertainty`` (P,) eV."""
        result = dict(self.model.predict(images, forces=forces))
        if uncertainty:
            result["energy_uncertainty"] = np.asarray(self.estimator(self.model, images), float)
        return result

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = first_structure(self.predict([self.atoms], forces=True, uncertainty=True))

    def save(self, path: str | Path) -> None:
        """A folder: ``uncertain.json``, the model's file and the estimator's data."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        name = "model" + type(self.model).file_extension
        self.model.save(folder / name)
        meta = {
            "format": FORMAT,
            "kind": self.estimator.kind,
            "model": name,
            "class": f"{type(self.model).__module__}:{type(self.model).__qualname__}",
            "estimator": self.estimator.save(folder),
        }
        with atomic_write(folder / "uncertain.json") as partial:
            partial.write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: str | Path, function=None) -> UncertainModel:
        """A model written by :meth:`save`; ``function``: the uncertainty function of a
        ``"callable"`` kind (it is not saved)."""
        import importlib

        folder = Path(path)
        meta = json.loads((folder / "uncertain.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder} is not a saved UncertainModel")
        module, _, name = meta["class"].partition(":")
        model_type = getattr(importlib.import_module(module), name)
        model = model_type.load(folder / meta["model"])
        if meta["kind"] == "callable":
            if function is None:
                raise ValueError(
                    f"{folder} was trained with the uncertainty function "
                    f"{meta['estimator']['function']}; give it again (function=...)"
                )
            return cls(model, FunctionUncertainty(function))
        return cls(model, ESTIMATORS[meta["kind"]].load(folder, meta["estimator"]))


__all__ = [
    "FunctionUncertainty",
    "NearestDistance",
    "PosteriorStd",
    "UncertainModel",
]
