"""AIQM2 (Chen, Dral et al.): GFN2-xTB* + the mean of eight ANI-type Δ-networks + D4(ωB97X).

The three parts, each computed here without MLatom:

* **GFN2-xTB\\***: GFN2-xTB without its D4 term, built by tblite from GFN2-xTB's own
  parametrisation with the dispersion section removed (:data:`ase_al.calculators.xtb`).
* **Δ-networks**: the eight published networks (``cv0.pt`` … ``cv7.pt``, MIT licence), read by
  :func:`ase_al.calculators.ani_file.read_ani_file` from an installed ``mlatom`` distribution
  (``pip install --no-deps mlatom``, which installs the files without MLatom's pinned stack) or
  from ``model_dir=``. MLatom is never imported. Evaluated in float64.
* **D4(ωB97X)**: dftd4 with the damping parameters MLatom pins for AIQM2 (s6 = 1, s8, a1, a2
  below, three-body term s9 = 1).

Results: ``energy`` (eV), ``forces`` (eV/Å, analytic: tblite's gradient, the networks'
autograd gradient and dftd4's), ``energy_uncertainty`` (eV): the standard deviation (ddof 0,
as MLatom's ``energy_standard_deviation``) of the eight network energies.
"""

from __future__ import annotations

from pathlib import Path

from ase.calculators.calculator import Calculator, all_changes
from ase.units import Hartree

from ase_al.errors import check_atoms, require, spin_and_charge
from ase_al.options import StrictParameters

#: D4 damping of ωB97X as pinned by MLatom 3.25.5 for AIQM2 (s6, s8, a1, a2)
D4_WB97X = {"s6": 1.0, "s8": -0.07519516, "a1": 0.45094893, "a2": 6.78425255, "s9": 1.0}

#: where an installed ``mlatom`` distribution keeps AIQM2's networks
MLATOM_MODEL_DIR = "mlatom/mlatom_models/aiqm2_model"
N_NETWORKS = 8


def find_model_dir(model_dir=None) -> Path:
    """The folder holding AIQM2's ``cv0.pt`` … ``cv7.pt``: ``model_dir`` if given, else the
    installed ``mlatom`` distribution's (located by its metadata; MLatom is not imported)."""
    if model_dir is not None:
        folder = Path(model_dir)
        where = f"model_dir={str(model_dir)!r}"
    else:
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            folder = Path(distribution("mlatom").locate_file(MLATOM_MODEL_DIR))
        except PackageNotFoundError:
            raise FileNotFoundError(
                "AIQM2's network parameters were not found: install them with "
                "'pip install --no-deps mlatom' (MIT licence; only its files are read), or pass "
                "model_dir= a folder holding cv0.pt ... cv7.pt"
            ) from None
        where = "the installed mlatom distribution"
    missing = [f"cv{i}.pt" for i in range(N_NETWORKS) if not (folder / f"cv{i}.pt").is_file()]
    if missing:
        raise FileNotFoundError(
            f"AIQM2's network files {', '.join(missing)} are missing from {folder} ({where}); "
            "'pip install --no-deps mlatom' installs them"
        )
    return folder


class AIQM2(StrictParameters, Calculator):
    """AIQM2 as an ASE calculator (H, C, N, O).

    Parameters
    ----------
    model_dir : str or Path, optional
        Folder with ``cv0.pt`` … ``cv7.pt``; default: the installed ``mlatom`` distribution's.
    networks : sequence of int, optional
        Which of the eight networks to average (default all; the uncertainty needs two or more).
    dispersion : bool
        Add D4(ωB97X) (default True; False gives MLatom's "AIQM2 without dispersion").
    charge, multiplicity : int, optional
        Default: ``atoms.info["charge"]`` / ``["multiplicity"]``, else neutral, lowest spin.
    """

    implemented_properties = ["energy", "forces", "energy_uncertainty"]
    default_parameters = {
        "model_dir": None,
        "networks": None,
        "dispersion": True,
        "charge": None,
        "multiplicity": None,
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        networks = self.parameters.networks
        self.networks = list(range(N_NETWORKS)) if networks is None else [int(n) for n in networks]
        if not self.networks or any(n < 0 or n >= N_NETWORKS for n in self.networks):
            raise ValueError(f"networks must be indices 0..{N_NETWORKS - 1}, got {networks!r}")
        # missing backends and parameter files are named now, before any work is queued
        require("torch", "ani")
        if self.parameters.dispersion:
            require("dftd4.ase", "d4")
        self.model_dir = find_model_dir(self.parameters.model_dir)
        self._ensemble = None
        self._parts = None

    def __getstate__(self):
        # workers re-read the network files (~20 MB of tensors) instead of receiving them
        return {**self.__dict__, "_ensemble": None, "_parts": None}

    @property
    def ensemble(self):
        if self._ensemble is None:
            from ase_al.calculators.ani_file import ANIEnsemble, read_ani_file

            self._ensemble = ANIEnsemble(
                [read_ani_file(self.model_dir / f"cv{i}.pt") for i in self.networks]
            )
        return self._ensemble

    @property
    def elements(self) -> list[str]:
        """The elements AIQM2's networks cover."""
        return list(self.ensemble.species)

    def _baseline_and_dispersion(self):
        if self._parts is None:
            from ase_al.calculators.xtb import XTB

            parts = [XTB(method="GFN2-xTB*")]
            if self.parameters.dispersion:
                from ase_al.calculators import d4_dispersion

                parts.append(d4_dispersion(params=D4_WB97X))
            self._parts = parts
        return self._parts

    def network_energies(self, atoms, forces: bool = True):
        """Energies (eV) of the chosen networks, shape (networks,), and, if ``forces``, the
        mean network's forces (eV/Å)."""
        from ase_al.calculators._torch import torch

        th = torch()
        ensemble = self.ensemble
        species = th.as_tensor(ensemble.species_index(atoms.get_chemical_symbols()))
        positions = th.tensor(atoms.get_positions(), dtype=th.float64, requires_grad=forces)
        energies = ensemble.energies(species, positions)
        result = energies.detach().numpy() * Hartree
        if not forces:
            return result, None
        (gradient,) = th.autograd.grad(energies.mean(), positions)
        return result, -gradient.numpy() * Hartree

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        check_atoms(atoms)
        charge, multiplicity = spin_and_charge(
            atoms, self.parameters.charge, self.parameters.multiplicity
        )
        want_forces = "forces" in properties
        # first, before the baseline's SCF: it names any element the networks do not cover
        nn, nn_forces = self.network_energies(atoms, forces=want_forces)
        energy = float(nn.mean())
        forces = nn_forces.copy() if want_forces else None
        probe = atoms.copy()
        probe.info.update(charge=charge, multiplicity=multiplicity)
        probe.set_initial_charges([charge] + [0] * (len(atoms) - 1))  # dftd4 reads the sum
        for part in self._baseline_and_dispersion():
            probe.calc = part
            energy += probe.get_potential_energy()
            if want_forces:
                forces += probe.get_forces()
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energy_uncertainty"] = float(nn.std()) if len(nn) > 1 else 0.0
        if want_forces:
            self.results["forces"] = forces
