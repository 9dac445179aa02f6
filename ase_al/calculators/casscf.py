"""State-averaged CASSCF through PySCF: a multistate calculator with analytic gradients and
nonadiabatic coupling vectors, the electronic structure FSSH needs.

Units follow ASE (eV, Å; couplings in 1/Å); Hartree and Bohr appear only at the PySCF
boundary.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Bohr, Hartree

from ase_al.calculators.pyscf import PySCF
from ase_al.errors import SCFNotConvergedError


class SACASSCF(PySCF):
    """SA-CASSCF(n_electrons, n_orbitals) on an RHF reference, as a multistate calculator.

    Parameters
    ----------
    nelecas, ncas : int
        Active electrons and active orbitals.
    basis : str
        Basis set name as PySCF knows it.
    nstates : int
        Excited states: ``nstates + 1`` singlet (spin-pure, S² = 0 enforced) roots are
        averaged with equal weights unless ``weights`` says otherwise.
    weights : sequence of float, optional
        State-averaging weights (summing to 1).
    current_state : int
        The state whose ``energy`` and ``forces`` dynamics propagates on (0 = ground).
    electron_translation_factors : bool
        Couplings with PySCF's electron-translation-factor correction (default): translation
        invariant, so a hop's momentum adjustment moves no centre of mass. False gives the
        full derivative coupling ⟨I|∇J⟩ of the atom-centred basis.
    charge, multiplicity, conv_tol, max_cycle, threads :
        As for :class:`~ase_al.calculators.pyscf.PySCF` (multiplicity of the RHF reference).

    Notes
    -----
    Results: ``state_energies`` (nstates + 1, eV), ``energy`` and ``forces`` of the current state,
    ``state_forces`` (nstates + 1, N, 3) eV/Å, ``nacs`` (n, n, N, 3) 1/Å (antisymmetric).
    The orbitals of the previous geometry are projected onto the next as its starting guess,
    which keeps the active space the same along a trajectory.
    """

    implemented_properties = ["energy", "forces", "state_energies", "state_forces", "nacs"]
    default_parameters = {
        **PySCF.default_parameters,
        "method": "HF",
        "nelecas": 2,
        "ncas": 2,
        "nstates": 1,
        "weights": None,
        "electron_translation_factors": True,
        "conv_tol": 1e-10,
    }

    def __init__(self, nelecas: int = 2, ncas: int = 2, basis: str = "6-31G*", **kwargs):
        kwargs.pop("method", None)
        super().__init__(method="HF", basis=basis, nelecas=nelecas, ncas=ncas, **kwargs)
        if int(self.parameters.nstates) < 1:
            raise ValueError("SA-CASSCF needs nstates >= 1 (excited states to average over)")
        weights = self.parameters.weights
        if weights is not None and (
            len(weights) != int(self.parameters.nstates) + 1 or abs(sum(weights) - 1) > 1e-8
        ):
            raise ValueError("weights: one per state (nstates + 1 of them), summing to 1")
        self._mc = None
        self._previous = None  # (mol, mo_coeff) of the last geometry, for the next guess

    def _casscf(self, atoms: Atoms):
        from pyscf import mcscf

        mf, _ = self._run(atoms)  # RHF, with our SCF checks and errors
        n = int(self.parameters.nstates) + 1
        weights = self.parameters.weights or [1.0 / n] * n
        ncas, nelecas = int(self.parameters.ncas), int(self.parameters.nelecas)
        if nelecas > mf.mol.nelectron or ncas > mf.mo_coeff.shape[1]:
            raise ValueError(
                f"active space ({nelecas}, {ncas}) does not fit {mf.mol.nelectron} electrons "
                f"in {mf.mo_coeff.shape[1]} orbitals"
            )
        mc = mcscf.CASSCF(mf, ncas, nelecas)
        mc.fix_spin_(ss=0)
        mc = mc.state_average_(list(weights))
        mc.conv_tol = self.parameters.conv_tol
        mc.conv_tol_grad = max(np.sqrt(self.parameters.conv_tol), 1e-8)
        mc.verbose = 0
        guess = mf.mo_coeff
        if self._previous is not None and self._previous[0].natm == mf.mol.natm:
            guess = mcscf.project_init_guess(mc, self._previous[1], self._previous[0])
        with self._threads():
            mc.kernel(guess)
        if not mc.converged:
            raise SCFNotConvergedError("SA-CASSCF did not converge", atoms)
        self._previous = (mf.mol, mc.mo_coeff)
        return mc

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        # the base class's bookkeeping only: PySCF.calculate would run an SCF-level calculation
        Calculator.calculate(self, atoms, properties, system_changes)
        if system_changes or self._mc is None:
            self._mc = self._casscf(self.atoms)
            self._nacs = None
        mc = self._mc
        energies = np.asarray(mc.e_states) * Hartree
        state = int(self.parameters.current_state)
        self.results["state_energies"] = energies
        self.results["energy"] = float(energies[state])
        if "forces" in properties:
            self.results["forces"] = self._state_forces(state)
        if "state_forces" in properties:
            self.results["state_forces"] = np.array(
                [self._state_forces(k) for k in range(len(energies))]
            )
        if "nacs" in properties:
            self.results["nacs"] = self._couplings()

    def _state_forces(self, state: int) -> np.ndarray:
        with self._threads():
            gradient = self._mc.nuc_grad_method().kernel(state=state)
        return -np.asarray(gradient) * Hartree / Bohr

    def _couplings(self) -> np.ndarray:
        if self._nacs is None:
            n = int(self.parameters.nstates) + 1
            nacs = np.zeros((n, n, len(self.atoms), 3))
            method = self._mc.nac_method()
            etfs = bool(self.parameters.electron_translation_factors)
            with self._threads():
                for i in range(n):
                    for j in range(i + 1, n):
                        d = np.asarray(method.kernel(state=(i, j), use_etfs=etfs)) / Bohr
                        nacs[i, j], nacs[j, i] = d, -d
            self._nacs = nacs
        return self._nacs
