"""HF, MP2 and DFT reference methods through PySCF, as an ASE calculator.

Units follow ASE (eV, Å, e·Å); Hartree and Bohr appear only at the PySCF boundary.
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.units import Bohr, Hartree

from ase_al.errors import (
    SCFNotConvergedError,
    check_atoms,
    require,
    spin_and_charge,
)
from ase_al.options import StrictParameters

#: Methods PySCF handles that are not density functionals.
WAVEFUNCTION_METHODS = ("HF", "MP2")


def is_pyscf_method(method: str) -> bool:
    """True if ``method`` is HF, MP2 or an exchange-correlation functional PySCF knows."""
    if method.upper() in WAVEFUNCTION_METHODS:
        return True
    dft = require("pyscf.dft", "pyscf")
    try:
        dft.libxc.parse_xc(method)
    except (KeyError, ValueError):
        return False
    return True


class PySCF(StrictParameters, Calculator):
    """Hartree–Fock, MP2 or Kohn–Sham DFT through PySCF.

    Parameters
    ----------
    method : str
        ``"HF"``, ``"MP2"`` or any functional PySCF/libxc knows (``"B3LYP"``, ``"PBE0"``,
        ``"wB97X"``, ...). Case-insensitive.
    basis : str
        Basis set name as PySCF knows it (``"6-31G*"``, ``"cc-pVDZ"``, ``"def2-SVP"``).
    charge, multiplicity : int, optional
        Molecular charge and spin multiplicity 2S+1. When not given they are read from
        ``atoms.info["charge"]`` / ``atoms.info["multiplicity"]``, else neutral and the lowest
        multiplicity. Multiplicity 1 gives a restricted, anything else an unrestricted reference.
    conv_tol : float
        SCF energy convergence threshold in Hartree.
    max_cycle : int
        Maximum SCF iterations; a second-order (Newton) solver is tried once before giving up.
    grid_level : int
        PySCF DFT integration grid level (0–9).
    threads : int, optional
        Number of OpenMP threads PySCF may use during this calculator's work.
    nstates : int
        Number of singlet (or, for open shells, spin-conserving) excited states computed by
        linear response on top of the SCF: TDDFT/TDHF, or TDA/CIS with ``tda=True``.
        Results ``excitation_energies`` (eV) and ``oscillator_strengths`` (length gauge).
    current_state : int
        With ``nstates``: the electronic state (0 = ground, n = n-th excited) whose energy and
        forces are ``energy`` and ``forces`` — what surface-hopping dynamics propagates on.
        Excited-state forces are PySCF's analytic TDDFT/TDA gradients. Also
        ``state_energies`` (nstates + 1, eV: ground and excited total energies) and, when asked,
        ``state_forces`` (nstates + 1, N, 3).

    Results are ``energy`` (eV), ``forces`` (eV/Å, analytic) and ``dipole`` (e·Å; not for MP2,
    whose relaxed density PySCF does not provide). ``get_hessian`` gives the analytic Hessian
    for HF and DFT, finite differences of analytic forces for MP2.
    """

    implemented_properties = [
        "energy",
        "forces",
        "dipole",
        "excitation_energies",
        "oscillator_strengths",
        "state_energies",
        "state_forces",
    ]
    default_parameters = {
        "method": "HF",
        "basis": "6-31G*",
        "charge": None,
        "multiplicity": None,
        "conv_tol": 1e-10,
        "max_cycle": 100,
        "grid_level": 3,
        "threads": None,
        "nstates": 0,
        "tda": False,
        "current_state": 0,
    }

    def __init__(self, method: str = "HF", basis: str = "6-31G*", **kwargs):
        require("pyscf", "pyscf")
        if not is_pyscf_method(method):
            raise ValueError(f"PySCF does not know the method {method!r} (HF, MP2 or a functional)")
        super().__init__(method=method, basis=basis, **kwargs)
        self._mf = None
        self._post = None
        self._td = None
        self._check_state(self.parameters.current_state)

    def _check_state(self, state) -> None:
        n = int(self.parameters.nstates or 0)
        if not 0 <= int(state) <= n:
            raise ValueError(
                f"current_state must be between 0 and nstates={n}, got {state}"
                + ("" if n else " (set nstates to compute excited states)")
            )

    def set(self, **kwargs):
        # switching the electronic state keeps the SCF and excited states of this geometry
        if set(kwargs) == {"current_state"}:
            self._check_state(kwargs["current_state"])
            if int(kwargs["current_state"]) != int(self.parameters.current_state):
                self.parameters.current_state = int(kwargs["current_state"])
                for key in ("energy", "forces", "free_energy"):
                    self.results.pop(key, None)
                return {"current_state": self.parameters.current_state}
            return {}
        return super().set(**kwargs)

    # -- the PySCF objects -------------------------------------------------------------
    def build_molecule(self, atoms: Atoms):
        """A built ``pyscf.gto.Mole`` for ``atoms`` (coordinates in Å)."""
        from pyscf import gto
        from pyscf.lib.exceptions import BasisNotFoundError

        check_atoms(atoms)
        charge, multiplicity = spin_and_charge(
            atoms, self.parameters.charge, self.parameters.multiplicity
        )
        basis = self.parameters.basis
        for symbol in sorted(set(atoms.get_chemical_symbols())):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    shells = gto.basis.load(basis, symbol)
            except BasisNotFoundError as err:
                raise ValueError(
                    f"basis set {basis!r} is not available for {symbol}: {err}"
                ) from None
            if not shells:
                raise ValueError(f"basis set {basis!r} is not available for {symbol}")
        ecp = basis if basis.lower().startswith("def2") else None
        return gto.M(
            atom=[
                (s, tuple(p))
                for s, p in zip(atoms.get_chemical_symbols(), atoms.positions, strict=False)
            ],
            unit="Angstrom",
            basis=basis,
            ecp=ecp,
            charge=charge,
            spin=multiplicity - 1,
            verbose=0,
        )

    def _mean_field(self, mol):
        from pyscf import dft, scf

        method = self.parameters.method.upper()
        restricted = mol.spin == 0
        if method in WAVEFUNCTION_METHODS:
            mf = scf.RHF(mol) if restricted else scf.UHF(mol)
        else:
            mf = dft.RKS(mol) if restricted else dft.UKS(mol)
            mf.xc = self.parameters.method
            mf.grids.level = self.parameters.grid_level
        mf.conv_tol = self.parameters.conv_tol
        mf.max_cycle = self.parameters.max_cycle
        return mf

    def _run(self, atoms: Atoms):
        """Converged SCF (and MP2) objects for ``atoms``; raises on SCF failure."""
        mol = self.build_molecule(atoms)
        mf = self._mean_field(mol)
        with self._threads():
            mf.kernel()
            if not mf.converged:
                mf = mf.newton()
                mf.kernel(mf.make_rdm1())
            if not mf.converged:
                raise SCFNotConvergedError(
                    f"{self.parameters.method}/{self.parameters.basis} SCF did not converge "
                    f"in {self.parameters.max_cycle} cycles (nor with a Newton solver)",
                    atoms,
                )
            post = None
            if self.parameters.method.upper() == "MP2":
                from pyscf import mp

                post = mp.MP2(mf)
                post.kernel()
        return mf, post

    def _threads(self):
        from contextlib import contextmanager

        from pyscf import lib

        @contextmanager
        def limited():
            previous = lib.num_threads()
            if self.parameters.threads:
                lib.num_threads(int(self.parameters.threads))
            try:
                yield
            finally:
                lib.num_threads(previous)

        return limited()

    # -- ASE interface -----------------------------------------------------------------
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if system_changes or self._mf is None:
            self._mf, self._post = self._run(self.atoms)
            self._td = None
        mf, post = self._mf, self._post
        solver = post if post is not None else mf
        ground = float(solver.e_tot) * Hartree
        self.results["energy"] = ground
        if self.parameters.nstates and "excitation_energies" not in self.results:
            self._excited_states(mf)
        if self.parameters.nstates:
            energies = ground + np.concatenate([[0.0], self.results["excitation_energies"]])
            self.results["state_energies"] = energies
            self.results["energy"] = float(energies[int(self.parameters.current_state)])
        if "forces" in properties:
            self.results["forces"] = self._state_forces(int(self.parameters.current_state))
        if "state_forces" in properties:
            n = int(self.parameters.nstates or 0)
            self.results["state_forces"] = np.array([self._state_forces(k) for k in range(n + 1)])
        if "dipole" in properties:
            if post is not None:
                raise PropertyNotImplementedError("MP2 dipoles (relaxed density) are not available")
            self.results["dipole"] = np.asarray(mf.dip_moment(unit="AU", verbose=0)) * Bohr

    def _state_forces(self, state: int) -> np.ndarray:
        """Analytic forces (eV/Å) of the ground state (0) or the n-th excited state."""
        with self._threads():
            if state == 0:
                solver = self._post if self._post is not None else self._mf
                gradient = solver.nuc_grad_method().kernel()
            else:
                gradient = self._td.nuc_grad_method().kernel(state=state)
        return -np.asarray(gradient) * Hartree / Bohr

    def _excited_states(self, mf) -> None:
        """Excitation energies and oscillator strengths of the lowest ``nstates`` states.

        PySCF's Davidson solver occasionally breaks down on a linearly dependent trial space
        (a NaN in its subspace orthogonalisation, or roots left unconverged), and whether it
        does can depend on the order of floating-point sums, i.e. on the thread count. A
        second solve with spare roots starts from a larger guess space, which is the usual
        cure; the lowest ``nstates`` roots are kept. A second failure is a reference error.
        """
        if self.parameters.method.upper() == "MP2":
            raise ValueError("excited states are available on top of HF or DFT, not MP2")
        n = int(self.parameters.nstates)
        problem = ""
        for spare in (0, 3):
            if self.parameters.tda:
                td = mf.TDA()
            else:  # full linear response: TDHF (RPA) for HF, TDDFT for a functional
                td = mf.TDDFT() if hasattr(mf, "xc") else mf.TDHF()
            td.nstates = n + spare
            try:
                with self._threads(), np.errstate(invalid="ignore"):
                    td.kernel()
            except (np.linalg.LinAlgError, ValueError, FloatingPointError) as err:
                problem = f"the solver broke down ({type(err).__name__}: {err})"
                continue
            converged = np.atleast_1d(np.asarray(td.converged, dtype=bool))[:n]
            energies = np.atleast_1d(np.asarray(td.e))[:n]
            if len(energies) == n and converged.all() and np.all(np.isfinite(energies)):
                break
            problem = (
                f"states {np.flatnonzero(~converged).tolist()} did not converge"
                if len(energies) == n
                else f"only {len(energies)} of {n} roots were found"
            )
        else:
            raise SCFNotConvergedError(
                f"excited-state solver failed ({problem}), also with {n + 3} roots", self.atoms
            )
        if spare:
            td.e, td.xy = td.e[:n], td.xy[:n]
            td.converged = np.asarray(td.converged)[:n]
            td.nstates = n
        self._td = td
        self.results["excitation_energies"] = np.asarray(td.e) * Hartree
        self.results["oscillator_strengths"] = np.asarray(td.oscillator_strength(gauge="length"))

    def get_hessian(self, atoms: Atoms | None = None) -> np.ndarray:
        """Cartesian Hessian (3N, 3N) in eV/Å².

        Analytic (PySCF) for HF and DFT; central differences of analytic forces for MP2 and
        for functionals whose analytic Hessian PySCF lacks.
        """
        atoms = self.atoms if atoms is None else atoms
        if atoms is None:
            raise ValueError("get_hessian needs a structure")
        if self.parameters.method.upper() != "MP2":
            self.get_potential_energy(atoms)
            try:
                with self._threads():
                    hessian = self._mf.Hessian().kernel()
            except (NotImplementedError, AttributeError, KeyError):
                pass
            else:
                n = len(atoms)
                return hessian.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) * Hartree / Bohr**2
        from ase_al.simulations import finite_difference_hessian

        return finite_difference_hessian(atoms, self)[0]
