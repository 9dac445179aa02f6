"""HF, MP2, CCSD, CCSD(T), ADC(2) and DFT reference methods through PySCF, as an ASE calculator.

Units follow ASE (eV, Å, e·Å); Hartree and Bohr appear only at the PySCF boundary.
(Over 400 lines: one calculator for every PySCF method family, whose name parsing, SCF
retries, gradients and excited states share the same molecule and checkpoint handling.)
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
WAVEFUNCTION_METHODS = ("HF", "MP2", "CCSD", "CCSD(T)", "ADC(2)")
#: correlated methods computed on top of the HF reference
POST_HF = ("MP2", "CCSD", "CCSD(T)", "ADC(2)")


class _CCSDT:
    """CCSD(T) as PySCF objects give it: the CCSD solver plus the perturbative triples, with
    ``e_tot`` and ``nuc_grad_method`` like the other post-HF solvers."""

    def __init__(self, ccsd):
        self.ccsd = ccsd
        self.e_t = ccsd.ccsd_t()
        self.e_tot = ccsd.e_tot + self.e_t

    def nuc_grad_method(self):
        if hasattr(self.ccsd, "nocca") or self.ccsd.__class__.__name__.startswith("U"):
            from pyscf.grad import uccsd_t as grad
        else:
            from pyscf.grad import ccsd_t as grad
        return grad.Gradients(self.ccsd)


def cache_minao_basis() -> None:
    """Make PySCF parse its ANO basis file once per element instead of once per calculation.

    PySCF's default SCF starting guess (``minao``) reads the element's ANO basis from a large
    text file every time (about 14 ms per element): for a small molecule that is a quarter to
    half of an HF, CIS or SA-CASSCF calculation. The wrapper installed here returns a copy of
    the first parse of ``("ano", element)``; every other call goes to PySCF's loader unchanged,
    and the numbers are identical. Installed once, on the first calculation.
    """
    import copy
    import functools

    from pyscf.gto import basis

    if getattr(basis.load, "_ase_al_cached", False):
        return
    original = basis.load

    @functools.cache
    def parsed(name, symbol):
        return original(name, symbol)

    @functools.wraps(original)
    def load(filename_or_basisname, symb, *args, **kwargs):
        if filename_or_basisname == "ano" and not args and not kwargs:
            return copy.deepcopy(parsed(filename_or_basisname, symb))
        return original(filename_or_basisname, symb, *args, **kwargs)

    load._ase_al_cached = True
    basis.load = load


def is_pyscf_method(method: str) -> bool:
    """True if ``method`` is HF, MP2, CCSD, CCSD(T), ADC(2) or a functional PySCF knows."""
    if method.upper() in WAVEFUNCTION_METHODS:
        return True
    dft = require("pyscf.dft", "pyscf")
    try:
        dft.libxc.parse_xc(method)
    except (KeyError, ValueError):
        return False
    return True


class PySCF(StrictParameters, Calculator):
    """Hartree–Fock, MP2, CCSD, CCSD(T), ADC(2) or Kohn–Sham DFT through PySCF.

    Parameters
    ----------
    method : str
        ``"HF"``, ``"MP2"``, ``"CCSD"``, ``"CCSD(T)"``, ``"ADC(2)"`` (ground state MP2,
        excited states by EE-ADC(2)) or any functional PySCF/libxc knows (``"B3LYP"``, ``"PBE0"``,
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

    Results are ``energy`` (eV), ``forces`` (eV/Å, analytic: PySCF has gradients for HF, DFT,
    MP2, CCSD and CCSD(T), closed and open shell) and ``dipole`` (e·Å; HF and DFT only: PySCF
    gives no relaxed post-HF densities). ADC(2) gives ``excitation_energies`` and
    ``oscillator_strengths`` (EE-ADC(2)) and the ground state's MP2 energy and forces; PySCF has
    no ADC(2) excited-state gradients, so asking for excited-state forces raises.
    ``get_hessian`` gives the analytic Hessian for HF and DFT, finite differences of analytic
    forces for the post-HF methods.
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
            raise ValueError(
                f"PySCF does not know the method {method!r} (HF, MP2, CCSD, CCSD(T), ADC(2) or "
                "a functional)"
            )
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
        # the def2 basis sets use effective core potentials from Rb (Z = 37) on
        heavy = sorted(
            {s for s, z in zip(atoms.get_chemical_symbols(), atoms.numbers, strict=False) if z > 36}
        )
        ecp = {s: basis for s in heavy} if basis.lower().startswith("def2") and heavy else None
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
        # no HDF5 checkpoint file: PySCF would write one at every SCF iteration (a quarter of a
        # small molecule's HF time), and nothing here restarts from it
        mf.chkfile = None
        return mf

    def _run(self, atoms: Atoms):
        """Converged SCF (and post-HF) objects for ``atoms``; raises on SCF failure."""
        cache_minao_basis()
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
            method = self.parameters.method.upper()
            if method in ("MP2", "ADC(2)"):
                from pyscf import mp

                post = mp.MP2(mf)
                post.kernel()
            elif method in ("CCSD", "CCSD(T)"):
                from pyscf import cc

                post = cc.CCSD(mf)
                post.conv_tol = min(1e-8, 10 * self.parameters.conv_tol)
                post.kernel()
                if not post.converged:
                    raise SCFNotConvergedError(
                        f"{method}/{self.parameters.basis}: the CCSD equations did not converge",
                        atoms,
                    )
                if method == "CCSD(T)":
                    post = _CCSDT(post)
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
                raise PropertyNotImplementedError(
                    f"{self.parameters.method} dipoles (relaxed densities) are not available"
                )
            self.results["dipole"] = np.asarray(mf.dip_moment(unit="AU", verbose=0)) * Bohr

    def _state_forces(self, state: int) -> np.ndarray:
        """Analytic forces (eV/Å) of the ground state (0) or the n-th excited state."""
        with self._threads():
            if state == 0:
                solver = self._post if self._post is not None else self._mf
                gradient = solver.nuc_grad_method().kernel()
            elif self.parameters.method.upper() == "ADC(2)":
                raise PropertyNotImplementedError(
                    "ADC(2) excited-state forces: PySCF has no ADC(2) gradients (use "
                    "TD-/TDA-DFT, CIS or SA-CASSCF for excited-state dynamics)"
                )
            else:
                gradient = self._td.nuc_grad_method().kernel(state=state)
        return -np.asarray(gradient) * Hartree / Bohr

    def _adc_states(self, mf) -> None:
        """EE-ADC(2) excitation energies and oscillator strengths (PySCF's ``adc`` module)."""
        from pyscf import adc

        n = int(self.parameters.nstates)
        solver = adc.ADC(mf)
        solver.method = "adc(2)"
        solver.method_type = "ee"
        solver.verbose = 0
        with self._threads():
            energies, _, strengths, _ = solver.kernel(nroots=n)[:4]
        energies = np.atleast_1d(np.asarray(energies))
        if len(energies) < n or not np.all(np.isfinite(energies)):
            raise SCFNotConvergedError(f"ADC(2) found {len(energies)} of {n} roots", self.atoms)
        self._td = solver
        self.results["excitation_energies"] = energies[:n] * Hartree
        self.results["oscillator_strengths"] = np.atleast_1d(np.asarray(strengths))[:n]

    def _excited_states(self, mf) -> None:
        """Excitation energies and oscillator strengths of the lowest ``nstates`` states.

        Two roots more than asked for are solved and the lowest ``nstates`` kept: the Davidson
        solver finds the highest root it is asked for least reliably (water, TD-B3LYP/6-31G:
        asked for 2 roots it returns 9.875 eV as the second, asked for 5 it finds the state at
        9.829 eV that the smaller guess space missed). It also occasionally breaks down on a
        linearly dependent trial space (a NaN in its subspace orthogonalisation, or roots left
        unconverged), which can depend on the order of floating-point sums, i.e. on the thread
        count; a second solve with five spare roots starts from a larger guess space, which is
        the usual cure. A second failure is a reference error.
        """
        method = self.parameters.method.upper()
        if method == "ADC(2)":
            return self._adc_states(mf)
        if method in POST_HF:
            raise ValueError(
                f"excited states are available from HF, DFT or ADC(2), not {self.parameters.method}"
            )
        n = int(self.parameters.nstates)
        occupations = np.asarray(mf.mo_occ)
        spins = occupations if occupations.ndim == 2 else [occupations]
        single_excitations = int(sum(np.sum(o > 0) * np.sum(o == 0) for o in spins))
        if n > single_excitations:
            raise ValueError(
                f"{n} excited states asked for, but this basis allows only {single_excitations} "
                "single excitations"
            )
        problem = ""
        for spare in (2, 5):
            if self.parameters.tda:
                td = mf.TDA()
            else:  # full linear response: TDHF (RPA) for HF, TDDFT for a functional
                td = mf.TDDFT() if hasattr(mf, "xc") else mf.TDHF()
            td.nstates = min(n + spare, single_excitations)
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
                f"excited-state solver failed ({problem}), also with {n + 5} roots", self.atoms
            )
        if td.nstates > n:
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
        if self.parameters.method.upper() not in POST_HF:
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
