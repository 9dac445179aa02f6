"""Model Hamiltonians for nonadiabatic dynamics, as multistate ASE calculators.

Tully's simple avoided crossing (J. Chem. Phys. 93, 1061 (1990), model 1): one particle moving
along x on two coupled diabatic states, in atomic units

    V₁₁(x) = A (1 − e^(−B x)) for x ≥ 0,   −A (1 − e^(B x)) for x < 0;   V₂₂ = −V₁₁;
    V₁₂(x) = C e^(−D x²),   A = 0.01, B = 1.6, C = 0.005, D = 1.0, mass 2000 mₑ.

The calculator returns the adiabatic energies, forces and the nonadiabatic coupling vector in
ASE units (eV, Å), so the same :class:`~ase_al.dynamics.SurfaceHopping` that runs molecules
runs it. Its exact quantum scattering probabilities are known (and computed in the tests by
wave-packet propagation), which makes it the standard check of a surface-hopping code.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase import units as u
from ase.calculators.calculator import Calculator, all_changes

from ase_al.simulations import HBAR

#: Tully's particle mass, 2000 electron masses, in amu
TULLY_MASS = 2000.0 * u._me / u._amu


class TullySimpleAvoidedCrossing(Calculator):
    """Tully's model 1 as a two-state calculator for one atom moving along x.

    Parameters (atomic units, as in Tully's paper): ``A``, ``B``, ``C``, ``D``;
    ``current_state`` (0 lower, 1 upper adiabatic state).

    Results: ``energies`` (2,) eV, ``energy`` and ``forces`` of the current state (eV/Å, along
    x only), ``state_forces`` (2, 1, 3) and ``nacs`` (2, 2, 1, 3), the derivative couplings
    d_kl = ⟨k|∂/∂R l⟩ in 1/Å (antisymmetric, with a sign that is continuous in x).
    """

    implemented_properties = ["energy", "forces", "energies", "state_forces", "nacs"]
    default_parameters = {"A": 0.01, "B": 1.6, "C": 0.005, "D": 1.0, "current_state": 0}
    discard_results_on_any_change = True  # a new current_state changes energy and forces

    def diabatic(self, x: float) -> tuple[float, float, float, float]:
        """V₁₁, V₁₂ and their x-derivatives at ``x`` (bohr), in Hartree and Hartree/bohr."""
        p = self.parameters
        sign = 1.0 if x >= 0 else -1.0
        v11 = sign * p.A * (1.0 - np.exp(-sign * p.B * x))
        dv11 = p.A * p.B * np.exp(-sign * p.B * x)
        v12 = p.C * np.exp(-p.D * x * x)
        dv12 = -2.0 * p.D * x * v12
        return v11, v12, dv11, dv12

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if len(self.atoms) != 1:
            raise ValueError("Tully's model describes one particle (an Atoms of length 1)")
        x = self.atoms.positions[0, 0] / u.Bohr
        v11, v12, dv11, dv12 = self.diabatic(x)
        # H = [[a, b], [b, −a]]: E± = ±w, mixing angle θ = atan2(b, a)/2, continuous in x
        # because b > 0; d(lower, upper) = dθ/dx
        w = float(np.hypot(v11, v12))
        dw = (v11 * dv11 + v12 * dv12) / w
        dtheta = 0.5 * (v11 * dv12 - v12 * dv11) / w**2
        energies = np.array([-w, w]) * u.Hartree
        state_forces = np.zeros((2, 1, 3))
        state_forces[:, 0, 0] = np.array([dw, -dw]) * u.Hartree / u.Bohr
        nacs = np.zeros((2, 2, 1, 3))
        nacs[0, 1, 0, 0] = dtheta / u.Bohr
        nacs[1, 0, 0, 0] = -dtheta / u.Bohr
        state = int(self.parameters.current_state)
        self.results = {
            "energies": energies,
            "energy": float(energies[state]),
            "forces": state_forces[state],
            "state_forces": state_forces,
            "nacs": nacs,
        }


def tully_particle(x: float = -10.0, k: float = 20.0) -> Atoms:
    """The particle of Tully's models at ``x`` (bohr) with momentum ``k`` (ħ/bohr) along +x."""
    atoms = Atoms("H", positions=[[x * u.Bohr, 0.0, 0.0]], masses=[TULLY_MASS])
    # momentum in ASE units: k ħ/bohr = k · HBAR / Bohr (HBAR in eV · ASE time)
    atoms.set_momenta([[k * HBAR / u.Bohr, 0.0, 0.0]])
    atoms.calc = TullySimpleAvoidedCrossing()
    return atoms
