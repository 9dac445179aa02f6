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

from ase_al.options import StrictParameters
from ase_al.simulations import HBAR

#: Tully's particle mass, 2000 electron masses, in amu
TULLY_MASS = 2000.0 * u._me / u._amu


class TullySimpleAvoidedCrossing(StrictParameters, Calculator):
    """Tully's model 1 as a two-state calculator for one atom moving along x.

    Parameters (atomic units, as in Tully's paper): ``A``, ``B``, ``C``, ``D``;
    ``current_state`` (0 lower, 1 upper adiabatic state).

    Notes
    -----
    Results: ``state_energies`` (2,) eV, ``energy`` and ``forces`` of the current state (eV/Å, along
    x only), ``state_forces`` (2, 1, 3) and ``nacs`` (2, 2, 1, 3), the derivative couplings
    d_kl = ⟨k|∂/∂R l⟩ in 1/Å (antisymmetric, with a sign that is continuous in x).
    """

    implemented_properties = ["energy", "forces", "state_energies", "state_forces", "nacs"]
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
            "state_energies": energies,
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


class TriatomicAvoidedCrossing(StrictParameters, Calculator):
    """Two electronic states of a bent symmetric triatomic (B–A–B) with an avoided crossing.

    A model molecule whose exact energies and forces cost nothing: the reference of tests and
    tutorials of excited-state active learning. With bond lengths r₁, r₂ (A–B, Å) and the
    B–A–B angle θ (rad), the two diabatic states (eV) are

        V₁ = Σᵢ D₁ (1 − e^(−a₁ (rᵢ − r₁₀)))² + ½ k₁ (cos θ − cos θ₁)²       (ground state)
        V₂ = T + Σᵢ D₂ (1 − e^(−a₂ (rᵢ − r₂₀)))² + ½ k₂ (cos θ − cos θ₂)²   (longer bonds, wider
                                                                               angle)

    with a constant coupling c; the adiabatic states are E∓ = (V₁ + V₂)/2 ∓ sqrt(((V₁ − V₂)/2)²
    + c²), the forces their exact gradients (the bend in cos θ keeps them smooth through
    linear geometries). Defaults (water-like ground state): D₁ = 5 eV, a₁ = 2.2 Å⁻¹,
    r₁₀ = 0.96 Å, k₁ = 4.3 eV, θ₁ = 104.5°; D₂ = 3 eV, a₂ = 1.6 Å⁻¹, r₂₀ = 1.2 Å, k₂ = 3.4 eV,
    θ₂ = 130°, T = 1 eV, c = 0.1 eV. S₁ lies 2.6 eV above the ground-state minimum there; the
    diabats cross at r ≈ 1.13 Å (gap 2c), which a molecule excited to S₁ passes on its first
    stretch, so surface hopping has hops of intermediate probability to make.

    Notes
    -----
    Results: ``state_energies`` (2,) eV, ``state_forces`` (2, 3, 3) eV/Å, and ``energy`` and
    ``forces`` of ``current_state``. Atom 0 is the central atom.
    """

    implemented_properties = ["energy", "forces", "state_energies", "state_forces"]
    default_parameters = {
        "D1": 5.0,
        "a1": 2.2,
        "r1": 0.96,
        "k1": 4.3,
        "theta1": 104.5,
        "D2": 3.0,
        "a2": 1.6,
        "r2": 1.2,
        "k2": 3.4,
        "theta2": 130.0,
        "T": 1.0,
        "c": 0.1,
        "current_state": 0,
    }
    discard_results_on_any_change = True

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if len(self.atoms) != 3:
            raise ValueError("TriatomicAvoidedCrossing describes a triatomic (central atom first)")
        p = self.parameters
        bonds = self.atoms.positions[1:] - self.atoms.positions[0]  # (2, 3)
        r = np.linalg.norm(bonds, axis=1)
        unit = bonds / r[:, None]
        cos = float(unit[0] @ unit[1])
        # d cos θ / dR for the two outer atoms; the central atom takes minus their sum
        dcos = np.array([(unit[1] - cos * unit[0]) / r[0], (unit[0] - cos * unit[1]) / r[1]])
        grad_r = np.zeros((2, 3, 3))  # d r_i / d R_atom
        for i in range(2):
            grad_r[i, i + 1] = unit[i]
            grad_r[i, 0] = -unit[i]
        grad_cos = np.zeros((3, 3))
        grad_cos[1:] = dcos
        grad_cos[0] = -dcos.sum(axis=0)

        def diabat(D, a, r0, k, theta0, offset):
            e = np.exp(-a * (r - r0))
            bend = cos - np.cos(np.radians(theta0))
            value = offset + np.sum(D * (1 - e) ** 2) + 0.5 * k * bend**2
            dr = 2.0 * D * a * e * (1.0 - e)
            gradient = np.einsum("i,iaj->aj", dr, grad_r) + k * bend * grad_cos
            return value, gradient

        v1, g1 = diabat(p.D1, p.a1, p.r1, p.k1, p.theta1, 0.0)
        v2, g2 = diabat(p.D2, p.a2, p.r2, p.k2, p.theta2, p.T)
        half, ghalf = 0.5 * (v1 - v2), 0.5 * (g1 - g2)
        w = float(np.hypot(half, p.c))
        energies = 0.5 * (v1 + v2) + np.array([-w, w])
        gw = half * ghalf / w
        state_forces = -np.array([0.5 * (g1 + g2) - gw, 0.5 * (g1 + g2) + gw])
        state = int(p.current_state)
        self.results = {
            "state_energies": energies,
            "energy": float(energies[state]),
            "forces": state_forces[state],
            "state_forces": state_forces,
        }
