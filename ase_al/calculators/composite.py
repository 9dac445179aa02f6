"""AIQM-like composite methods: a cheap baseline, an ensemble of ML corrections, dispersion.

E = E_baseline + mean_k ΔE_k + E_dispersion, and the same for forces; the spread of the
corrections is the uncertainty. The corrections are Δ-learned: trained on
target − baseline − dispersion for structures labelled with the target method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm.auto import tqdm

from ase_al.calculators._members import load_members, read_manifest, save_members, write_manifest
from ase_al.calculators.base import TrainableModel, is_trainable
from ase_al.calculators.committee import predict_batch
from ase_al.errors import NotTrainedError, check_atoms
from ase_al.options import accepted_parameters

FORMAT = "ase-al Composite 1"


def _single_point(calc: Calculator, atoms: Atoms) -> tuple[float, np.ndarray]:
    work = atoms.copy()
    work.calc = calc
    return work.get_potential_energy(), work.get_forces()


class Composite(TrainableModel):
    """Baseline + mean of Δ-learned corrections + dispersion, as one ASE calculator.

    Parameters
    ----------
    baseline : str or Calculator
        The cheap method, by name (``"GFN2-xTB"``, any :func:`ase_al.methods` name) or as a
        calculator. Only a named baseline can be saved.
    corrections : list, optional
        Trained correction models (any calculators, ideally with a batched ``predict``).
        Empty until :meth:`train` fits them.
    dispersion : str or Calculator, optional
        A D4 correction for this functional name (``"B3LYP"``, through dftd4), or any
        calculator, added to baseline and corrections; None: no dispersion term.
    correction : str or class
        Model type the corrections are trained as (``"ANI"``, ``"MACE"``, ``"KREG"``).
    n_corrections : int
        Corrections :meth:`train` fits: each on a random ``subsample`` fraction of the data
        with its own seed; their standard deviation is the uncertainty (needs ≥ 2).
    correction_kwargs : dict, optional
        Settings for every correction model (e.g. ``{"max_epochs": 500}``).
    subsample : float
        Fraction of the training structures each correction sees (1.0: all, seeds differ).
    seed : int

    Notes
    -----
    Results: ``energy`` (eV), ``forces`` (eV/Å) and, with two or more corrections,
    ``energy_uncertainty`` (eV): the standard deviation of the corrections' energies.
    """

    implemented_properties = ["energy", "forces", "energy_uncertainty"]
    #: saved as a directory
    file_extension = ""

    def __init__(
        self,
        baseline="GFN2-xTB",
        corrections=None,
        dispersion=None,
        correction="ANI",
        n_corrections: int = 4,
        correction_kwargs: dict | None = None,
        subsample: float = 0.8,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        from ase_al.calculators import d4_dispersion, methods, model_class

        self.baseline_name = baseline if isinstance(baseline, str) else None
        self.baseline = methods(baseline) if isinstance(baseline, str) else baseline
        self.dispersion_name = dispersion if isinstance(dispersion, str) else None
        self.dispersion = d4_dispersion(dispersion) if isinstance(dispersion, str) else dispersion
        self.correction = correction
        self.correction_type = (
            model_class(correction) if isinstance(correction, str) else correction
        )
        if n_corrections < 1:
            raise ValueError("n_corrections must be at least 1")
        if not 0 < subsample <= 1:
            raise ValueError("subsample must be in (0, 1]")
        self.n_corrections = int(n_corrections)
        self.correction_kwargs = dict(correction_kwargs or {})
        self.subsample = float(subsample)
        self.seed = int(seed)
        self.corrections = list(corrections or [])

    @property
    def is_trained(self) -> bool:
        return bool(self.corrections)

    @property
    def validation_rmse(self) -> float | None:
        errors = [c.validation_rmse for c in self.corrections if is_trainable(c)]
        return next((float(e) for e in errors if e is not None), None)

    def clone(self, **changes) -> Composite:
        """An untrained composite with the same baseline, dispersion and correction recipe
        (with ``changes``)."""
        settings = dict(
            baseline=self.baseline_name or self.baseline,
            dispersion=self.dispersion_name or self.dispersion,
            correction=self.correction,
            n_corrections=self.n_corrections,
            correction_kwargs=self.correction_kwargs,
            subsample=self.subsample,
            seed=self.seed,
        )
        return type(self)(**{**settings, **changes})

    # -- parts -------------------------------------------------------------------------
    def _fixed_parts(self, images, progress=False) -> tuple[np.ndarray, np.ndarray]:
        """Baseline + dispersion energies (P,) and forces (P, N, 3), one structure at a time."""
        energies, forces = [], []
        for atoms in tqdm(images, desc="baseline", disable=not progress, leave=False):
            check_atoms(atoms)
            e, f = _single_point(self.baseline, atoms)
            if self.dispersion is not None:
                e_d, f_d = _single_point(self.dispersion, atoms)
                e, f = e + e_d, f + f_d
            energies.append(e)
            forces.append(f)
        return np.array(energies), np.array(forces)

    def parts(self, atoms: Atoms) -> dict:
        """Each term separately for one structure: ``baseline``, ``dispersion`` and
        ``corrections`` (a list), as (energy eV, forces eV/Å) pairs."""
        out = {"baseline": _single_point(self.baseline, atoms)}
        if self.dispersion is not None:
            out["dispersion"] = _single_point(self.dispersion, atoms)
        out["corrections"] = [_single_point(c, atoms) for c in self.corrections]
        return out

    def predict(self, images: list[Atoms], forces: bool = True, uncertainty: bool = True) -> dict:
        """Energies (P,) in eV, forces (P, N, 3) in eV/Å and, with two or more corrections,
        ``energy_uncertainty`` (P,) in eV; the corrections are evaluated as one batch each."""
        if not self.corrections:
            raise NotTrainedError(self)
        images = list(images)
        base_e, base_f = self._fixed_parts(images)
        outputs = [predict_batch(c, images, forces=forces) for c in self.corrections]
        delta_e = np.array([o["energy"] for o in outputs])
        result = {"energy": base_e + delta_e.mean(axis=0)}
        if forces:
            result["forces"] = base_f + np.mean([o["forces"] for o in outputs], axis=0)
        if uncertainty and len(self.corrections) > 1:
            result["energy_uncertainty"] = delta_e.std(axis=0)
        return result

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        result = self.predict([self.atoms])
        self.results = {"energy": float(result["energy"][0]), "forces": result["forces"][0]}
        if "energy_uncertainty" in result:
            self.results["energy_uncertainty"] = float(result["energy_uncertainty"][0])
        elif "energy_uncertainty" in properties:
            raise ValueError("energy_uncertainty needs two or more corrections")

    # -- Δ-learning --------------------------------------------------------------------
    def delta_images(self, images: list[Atoms], progress: bool | None = None) -> list[Atoms]:
        """Copies of ``images`` labelled with target − baseline − dispersion (energies and,
        where the images have them, forces): what the corrections learn."""
        images = list(images)
        base_e, base_f = self._fixed_parts(images, progress=bool(progress))
        delta = []
        for atoms, e, f in zip(images, base_e, base_f, strict=True):
            target_e = atoms.get_potential_energy()
            try:
                target_f = atoms.get_forces()
            except Exception:  # energies-only labels
                target_f = None
            work = atoms.copy()
            work.calc = SinglePointCalculator(
                work, energy=target_e - e, forces=None if target_f is None else target_f - f
            )
            delta.append(work)
        return delta

    def train(
        self,
        images: list[Atoms],
        energies: bool = True,
        forces: bool = True,
        progress: bool | None = None,
    ) -> Composite:
        """Δ-learn the corrections from ``images`` labelled with the target method.

        The baseline (and dispersion) are computed for every image; each of the
        ``n_corrections`` models is trained on target − baseline − dispersion of its own
        random ``subsample`` of the images, with its own seed.
        """
        if not energies:
            raise ValueError("a composite always learns energies")
        images = list(images)
        if len(images) < 2:
            raise ValueError("Δ-learning needs at least 2 labelled structures")
        delta = self.delta_images(images, progress=progress)
        rng = np.random.default_rng(self.seed)
        size = max(2, int(round(self.subsample * len(delta))))
        self.corrections = []
        for k in range(self.n_corrections):
            chosen = np.sort(rng.choice(len(delta), size, replace=False))
            kwargs = dict(self.correction_kwargs)
            if "seed" in accepted_parameters(self.correction_type):
                kwargs.setdefault("seed", self.seed + k)
            model = self.correction_type(**kwargs)
            model.train([delta[i] for i in chosen], forces=forces)
            self.corrections.append(model)
        self.results = {}
        return self

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the composite as a directory: ``composite.json`` and one file per correction."""
        if not self.is_trained:
            raise NotTrainedError(self, "save it")
        if self.baseline_name is None:
            raise ValueError("only a composite whose baseline was given by name can be saved")
        if self.dispersion is not None and self.dispersion_name is None:
            raise ValueError("only a dispersion term given by functional name can be saved")
        if not self.corrections or not all(is_trainable(c) for c in self.corrections):
            raise ValueError("the corrections must be trained models with save()")
        path = Path(path)
        meta = {
            "format": FORMAT,
            "baseline": self.baseline_name,
            "dispersion": self.dispersion_name,
            "correction": self.correction if isinstance(self.correction, str) else None,
            "correction_kwargs": self.correction_kwargs,
            "subsample": self.subsample,
            "seed": self.seed,
            "corrections": save_members(path, self.corrections, "correction"),
        }
        write_manifest(path, "composite.json", meta)

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Composite:
        """A composite written by :meth:`save` (a directory)."""
        meta = read_manifest(Path(path), "composite.json", FORMAT)
        corrections = load_members(Path(path), meta["corrections"])
        return cls(
            baseline=meta["baseline"],
            corrections=corrections,
            dispersion=meta["dispersion"],
            correction=meta["correction"] or type(corrections[0]),
            n_corrections=len(corrections),
            correction_kwargs=meta["correction_kwargs"],
            subsample=meta["subsample"],
            seed=meta["seed"],
            **kwargs,
        )
