"""Semi-empirical methods through SCINE Sparrow (``pip install 'ase-al[sparrow]'``).

Sparrow (BSD-3, PyPI ``scine-sparrow``) computes MNDO, AM1, RM1, PM3, PM6 and DFTB0/2/3
energies and analytic gradients. Its calculator handle is rebuilt in each process, so the ASE
calculator here can be shipped to worker processes.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Bohr, Hartree

from ase_al.errors import SCFNotConvergedError, check_atoms, require, spin_and_charge
from ase_al.options import StrictParameters

#: method names ase-al accepts -> Sparrow's model names
SPARROW_METHODS = {
    "MNDO": "MNDO",
    "AM1": "AM1",
    "RM1": "RM1",
    "PM3": "PM3",
    "PM6": "PM6",
    "DFTB0": "DFTB0",
    "DFTB2": "DFTB2",
    "DFTB3": "DFTB3",
}


def sparrow_modules():
    """Sparrow's calculators, loaded into SCINE's module manager (once per process)."""
    su = require("scine_utilities", "sparrow")
    require("scine_sparrow", "sparrow")  # importing it registers its module
    return su, su.core.ModuleManager.get_instance()


class Sparrow(StrictParameters, Calculator):
    """A semi-empirical method of SCINE Sparrow as an ASE calculator.

    Parameters
    ----------
    method : str
        ``"MNDO"``, ``"AM1"``, ``"RM1"``, ``"PM3"``, ``"PM6"``, ``"DFTB0"``, ``"DFTB2"`` or
        ``"DFTB3"`` (case-insensitive).
    charge, multiplicity : int, optional
        Default: ``atoms.info["charge"]`` / ``["multiplicity"]``, else neutral, lowest spin.
        Multiplicity > 1 uses Sparrow's unrestricted formalism.
    scf_tolerance : float
        SCF energy convergence in Hartree (default 1e-9: tighter than Sparrow's 1e-7, so that
        finite-difference checks and vibrational analyses see smooth energies).
    max_scf_iterations : int

    Results: ``energy`` (eV; Sparrow's total energy, electronic plus core repulsion, not a
    heat of formation) and ``forces`` (eV/Å).
    """

    implemented_properties = ["energy", "forces"]
    default_parameters = {
        "method": "PM6",
        "charge": None,
        "multiplicity": None,
        "scf_tolerance": 1e-9,
        "max_scf_iterations": 200,
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        method = str(self.parameters.method).upper()
        if method not in SPARROW_METHODS:
            raise ValueError(
                f"unknown Sparrow method {self.parameters.method!r}; known: "
                f"{', '.join(SPARROW_METHODS)}"
            )
        self.parameters.method = SPARROW_METHODS[method]
        sparrow_modules()  # a missing Sparrow is named now, before any work is queued
        self._calculator = None

    def __getstate__(self):
        return {**self.__dict__, "_calculator": None}

    def _handle(self):
        if self._calculator is None:
            su, manager = sparrow_modules()
            calc = manager.get("calculator", self.parameters.method)
            calc.log = su.core.Log.silent()
            self._calculator = calc
        return self._calculator

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        check_atoms(atoms)
        charge, multiplicity = spin_and_charge(
            atoms, self.parameters.charge, self.parameters.multiplicity
        )
        su, _ = sparrow_modules()
        calc = self._handle()
        try:
            elements = [su.ElementInfo.element_from_symbol(s) for s in atoms.get_chemical_symbols()]
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"Sparrow {self.parameters.method}: {err}") from None
        settings = calc.settings
        values = {
            "molecular_charge": int(charge),
            "spin_multiplicity": int(multiplicity),
            "spin_mode": "restricted" if multiplicity == 1 else "unrestricted",
            "self_consistence_criterion": float(self.parameters.scf_tolerance),
            "max_scf_iterations": int(self.parameters.max_scf_iterations),
        }
        for key, value in values.items():
            if key in settings:  # DFTB0 is not self-consistent: no SCF settings
                settings[key] = value
        # the settings first: Sparrow checks a new structure against the charge and spin
        calc.structure = su.AtomCollection(elements, atoms.positions / Bohr)
        wanted = [su.Property.Energy]
        if "forces" in properties:
            wanted.append(su.Property.Gradients)
        calc.set_required_properties(wanted)
        try:
            results = calc.calculate()
        except RuntimeError as err:
            message = str(err)
            if "parameters" in message.lower() or "element" in message.lower():
                raise ValueError(f"Sparrow {self.parameters.method}: {message}") from None
            raise SCFNotConvergedError(
                f"Sparrow {self.parameters.method} failed: {message}", atoms
            ) from None
        if not results.successful_calculation:
            raise SCFNotConvergedError(
                f"Sparrow {self.parameters.method} did not converge in "
                f"{self.parameters.max_scf_iterations} SCF iterations",
                atoms,
            )
        self.results["energy"] = float(results.energy) * Hartree
        self.results["free_energy"] = self.results["energy"]
        if "forces" in properties:
            self.results["forces"] = -np.asarray(results.gradients) * Hartree / Bohr
