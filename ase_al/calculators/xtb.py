"""GFN2-xTB, GFN1-xTB and GFN2-xTB* (GFN2-xTB without D4) through tblite's own ASE calculator."""

from __future__ import annotations

from ase.calculators.calculator import CalculationFailed, InputError, all_changes
from tblite.ase import TBLite

from ase_al.errors import ReferenceCalculationError, check_atoms, spin_and_charge
from ase_al.options import StrictParameters

XTB_METHODS = {"gfn2-xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB", "gfn2-xtb*": "GFN2-xTB*"}


def gfn2_without_dispersion() -> dict:
    """GFN2-xTB's parametrisation (as tblite exports it) without its D4 section: GFN2-xTB*,
    the baseline of AIQM2. tblite builds a calculator from such a mapping."""
    from tblite import library

    param = library.new_param()
    library.export_gfn2_param(param)
    table = library.new_table()
    library.dump_param(param, table)
    data = library.table_to_dict(table)
    del data["dispersion"]
    data["meta"]["name"] = "GFN2-xTB*"
    return data


class XTB(StrictParameters, TBLite):
    """tblite's ``TBLite`` calculator with ase-al's input checks and error type.

    Parameters are tblite's (``method="GFN2-xTB"``, ``charge``, ``multiplicity``,
    ``accuracy``, ``electronic_temperature`` in K, ...). Charge and multiplicity default to
    ``atoms.info["charge"]`` / ``atoms.info["multiplicity"]`` when present, else neutral and
    the lowest multiplicity; an impossible multiplicity raises ``ValueError``. Output is silent by
    default (``verbosity=0``). Results: ``energy`` (eV), ``forces`` (eV/Å), ``dipole`` (e·Å),
    ``charges``.

    ``scf_restart`` (default False): tblite's own calculator starts each SCF from the previous
    structure's solution, so a result depends on what was computed before it (forces differ by
    up to ~4e-4 eV/Å at the default accuracy) and labels computed in parallel would depend on
    which worker got which structure. By default every calculation starts from tblite's standard
    guess instead: one structure, one result, about 10 % slower. ``scf_restart=True`` restores the
    restart (a small saving along an MD trajectory).
    """

    def __init__(self, method: str = "GFN2-xTB", scf_restart: bool = False, **kwargs):
        kwargs.setdefault("verbosity", 0)
        self.scf_restart = bool(scf_restart)
        canonical = XTB_METHODS.get(method.lower()) if isinstance(method, str) else None
        if canonical is None:
            raise ValueError(
                f"unknown xTB method {method!r}; known: {sorted(XTB_METHODS.values())}"
            )
        self.method_name = canonical
        self._explicit = {k for k in ("charge", "multiplicity") if kwargs.get(k) is not None}
        if canonical == "GFN2-xTB*":
            canonical = gfn2_without_dispersion()
        super().__init__(method=canonical, **kwargs)

    def __getstate__(self):
        # tblite's library handles (cffi) cannot be pickled; a copy sent to a worker process
        # builds its own on first use
        state = self.__dict__.copy()
        state.update(_xtb=None, _res=None)
        return state

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        atoms = self.atoms if atoms is None else atoms
        check_atoms(atoms)
        charge, multiplicity = spin_and_charge(
            atoms,
            self.parameters.charge if "charge" in self._explicit else None,
            self.parameters.multiplicity if "multiplicity" in self._explicit else None,
        )
        if (charge, multiplicity) != (self.parameters.charge, self.parameters.multiplicity):
            self.parameters.update(charge=charge, multiplicity=multiplicity)
            self._xtb = None  # tblite fixes charge and spin when its calculator is built
        if not self.scf_restart:
            self._res = None
        try:
            super().calculate(atoms, properties, system_changes)
        except InputError as err:
            raise ValueError(f"{self.method_name} cannot take this input: {err}") from err
        except CalculationFailed as err:
            raise ReferenceCalculationError(f"{self.method_name}: {err}", atoms) from err
