"""A model's curvature along the reference's normal modes, and structures displaced along the
modes where it is wrong.

Wigner sampling at a minimum and transition-state sampling at a saddle point draw their
initial conditions from the *reference's* normal modes. Propagated on a model whose surface
is curved differently there, they are not what the model's own harmonic distribution would
be, and the dynamics differ from the reference's from the first femtosecond: a mode whose
wavenumber is 10 % low holds its thermal energy at a 10 % larger amplitude, and at a
Diels-Alder saddle point the soft *asynchronous* mode (one forming bond running ahead of the
other) sets how far apart in time the two bonds form.

The check is cheap, since the reference's Hessian at every starting structure was computed
anyway: for each reference mode (mass-weighted unit vector e, Cartesian displacement
d = M^-1/2 e) the model's curvature along it is

    λ = eᵀ M^-1/2 H_model M^-1/2 e = -(F(x + h d) - F(x - h d))·d / (2h)

by central differences of the model's forces, and its wavenumber ν = sign(λ) √|λ| / (2πc),
negative for a direction of negative curvature (the reaction coordinate at a saddle point).
This is the Rayleigh quotient of the model's Hessian on the reference's mode, the curvature
along the direction the sampling displaces and pushes: no matching of the model's own modes to
the reference's is needed. A mode found off is labelled where it matters, at structures
displaced both ways along it by an amplitude typical of its Wigner distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units

from ase_al.simulations import HBAR

#: cm⁻¹: modes softer than this (in magnitude) are not checked: the intermolecular and
#: torsional modes of complexes and floppy molecules, strongly anharmonic at thermal
#: amplitudes, for which a harmonic wavenumber says little, and the free relative motions of
#: separate molecules
FLOOR_CM1 = 100.0

#: Å: the Cartesian length of the finite-difference step along each mode
STEP = 0.01


def frequencies_along_modes(model, atoms: Atoms, vibrations, step: float = STEP) -> np.ndarray:
    """The model's harmonic wavenumbers (cm⁻¹) along ``vibrations``' normal modes at
    ``atoms``: the curvature of the model's surface along each mode (a Rayleigh quotient of
    its Hessian, by central differences of its forces with a Cartesian step of ``step`` Å),
    negative where the curvature is. For the reference itself these are its own wavenumbers
    (``vibrations.frequencies``).

    ``model``: a calculator, with batched ``predict(images, forces=True)`` when it has one;
    ``vibrations``: a :class:`~ase_al.simulations.HarmonicAnalysis` of ``atoms``' geometry.
    """
    from ase_al.calculators.committee import predict_batch

    directions = mode_directions(atoms, vibrations)
    h = step / np.linalg.norm(directions, axis=1)  # mass-weighted step, Å·amu^1/2
    images = []
    for d, hk in zip(directions, h, strict=True):
        for sign in (1.0, -1.0):
            displaced = Atoms(atoms.numbers, atoms.positions + sign * hk * d.reshape(-1, 3))
            images.append(displaced)
    forces = np.asarray(predict_batch(model, images, forces=True)["forces"], float)
    forces = forces.reshape(len(directions), 2, -1)
    curvature = -np.einsum("ki,ki->k", forces[:, 0] - forces[:, 1], directions) / (2 * h)
    return np.sign(curvature) * np.sqrt(np.abs(curvature)) * HBAR / units.invcm


def mode_directions(atoms: Atoms, vibrations) -> np.ndarray:
    """(n_vib, 3N): each mass-weighted unit mode e as a Cartesian direction d = M^-1/2 e, so
    that ``atoms`` displaced by q·d is displaced by q (Å·amu^1/2) along the mode."""
    inv_sqrt_m = np.repeat(atoms.get_masses() ** -0.5, 3)
    return vibrations.mass_weighted_modes * inv_sqrt_m[None, :]


def wigner_widths(vibrations, temperature: float) -> np.ndarray:
    """Each mode's Wigner position width (mass-weighted, Å·amu^1/2) at ``temperature`` K:
    √(ħ/2ω · coth(ħω/2kT)) with ω = |ω| for an imaginary mode (the widths the Wigner
    sampler draws from)."""
    from ase_al.samplers.wigner import _wigner_widths

    return _wigner_widths(np.abs(vibrations.angular_frequencies), temperature)[0]


@dataclass
class ModeCheck:
    """What :func:`check_modes` found at one structure."""

    #: cm⁻¹, the reference's and the model's along the same modes
    reference: np.ndarray
    model: np.ndarray
    #: indices (among the vibrations) of the modes checked, and of those found off
    checked: np.ndarray
    off: np.ndarray
    #: two structures per mode off, displaced both ways along it
    displaced: list[Atoms] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready: the modes off with both wavenumbers, the largest relative error."""
        relative = np.abs(self.model - self.reference) / np.abs(self.reference)
        return {
            "modes_checked": int(len(self.checked)),
            "n_off": int(len(self.off)),
            "off": [
                {
                    "mode": int(k),
                    "reference_cm1": round(float(self.reference[k]), 1),
                    "model_cm1": round(float(self.model[k]), 1),
                }
                for k in self.off
            ],
            "max_relative_error": (
                round(float(np.max(relative[self.checked])), 4) if len(self.checked) else None
            ),
        }


def check_modes(
    model,
    atoms: Atoms,
    vibrations,
    tolerance: float,
    temperature: float,
    rng: np.random.Generator,
    floor_cm1: float = FLOOR_CM1,
) -> ModeCheck:
    """Compare the model's wavenumbers along the reference's modes at ``atoms`` (the
    reference's stationary point) with the reference's (:func:`frequencies_along_modes`).

    A mode of at least ``floor_cm1`` in magnitude is *off* when the two differ by more than
    ``tolerance`` (a fraction) of the reference's. Each mode off gets two structures,
    ``atoms`` displaced along it one way by a near amplitude, drawn uniformly between a
    half and one of its Wigner position widths at ``temperature`` K (:func:`wigner_widths`),
    and the other way by a far one, between one and two widths; which way gets which is
    drawn too (new draws each call, so that a mode still off next time is labelled
    elsewhere). The wavenumber is the curvature at the stationary point, and a model can
    fit the reference at one to two widths yet be flatter or steeper inside one (a soft,
    anharmonic mode, where most of the thermal samples lie): the near structure labels
    that, the far one the range the samples reach. Each carries
    ``info["mode"]`` (its index among the vibrations), ``info["mode_cm1"]`` (the reference's
    wavenumber) and ``info["mode_displacement"]`` (Å, the Cartesian length of the
    displacement, signed).
    """
    reference = np.asarray(vibrations.frequencies, float)
    model_cm1 = frequencies_along_modes(model, atoms, vibrations)
    checked = np.flatnonzero(np.abs(reference) >= floor_cm1)
    relative = np.abs(model_cm1[checked] - reference[checked]) / np.abs(reference[checked])
    off = checked[relative > tolerance]
    widths = wigner_widths(vibrations, temperature)
    directions = mode_directions(atoms, vibrations)
    displaced = []
    for k in off:
        d = directions[k].reshape(-1, 3)
        near, far = widths[k] * rng.uniform(0.5, 1.0), widths[k] * rng.uniform(1.0, 2.0)
        way = rng.choice((1.0, -1.0))
        for amplitude in (way * near, -way * far):  # mass-weighted, Å·amu^1/2, signed
            structure = Atoms(atoms.numbers, atoms.positions + amplitude * d)
            structure.info.update(
                mode=int(k),
                mode_cm1=float(reference[k]),
                mode_displacement=float(amplitude * np.linalg.norm(d)),
            )
            displaced.append(structure)
    return ModeCheck(reference, model_cm1, checked, off, displaced)


#: structures labelled per transition state and iteration by the barrier-top check
BARRIER_SAMPLES = 20


def reaction_coordinate(saddle: Atoms, vibrations) -> tuple[int, np.ndarray, float]:
    """The saddle point's imaginary mode: its index among the vibrations, its Cartesian
    direction d = M^-1/2 e (see :func:`mode_directions`) and the magnitude of its curvature
    |λ| = ω² (eV/(Å²·amu))."""
    frequencies = np.asarray(vibrations.frequencies, float)
    imaginary = np.flatnonzero(frequencies < 0)
    if len(imaginary) != 1:
        raise ValueError(
            f"a barrier-top check needs a first-order saddle point, found {len(imaginary)} "
            "imaginary modes"
        )
    k = int(imaginary[0])
    omega = frequencies[k] * units.invcm / HBAR  # cm⁻¹ -> 1/(ASE time)
    return k, mode_directions(saddle, vibrations)[k], float(omega**2)


@dataclass
class BarrierCheck:
    """Where a model puts the top of the barrier along the reference's reaction coordinate,
    relative to the reference's saddle point (:func:`check_barrier_top`)."""

    #: Å·amu^1/2 (mass-weighted), along the imaginary mode as the vibrations give its sign:
    #: the mean shift and its standard error over the samples
    shift: float
    error: float
    #: Å·amu^1/2: the reaction coordinate's Wigner width at the sampling temperature
    width: float
    #: Å: the Cartesian length of ``shift`` (signed)
    shift_A: float
    tolerance: float
    n: int

    @property
    def off(self) -> bool:
        """The shift is larger than ``tolerance`` times the width."""
        return abs(self.shift) > self.tolerance * self.width

    def summary(self) -> dict:
        return {
            "n_samples": self.n,
            "shift": round(self.shift, 5),
            "shift_error": round(self.error, 5),
            "shift_A": round(self.shift_A, 5),
            "width": round(self.width, 5),
            "shift_in_widths": round(self.shift / self.width, 4),
            "off": self.off,
        }


def check_barrier_top(
    model, samples, saddle: Atoms, vibrations, temperature: float, tolerance: float
) -> BarrierCheck:
    """How far ``model``'s barrier top lies from the reference's along the reaction coordinate.

    ``samples``: structures from the reference's transition-state sampling at ``saddle``
    (the reaction coordinate at the saddle point, the other modes thermal) carrying the
    reference's forces (eV/Å). On a barrier -½|λ|(q - q‡)² whose top is at q‡ along the
    mass-weighted reaction coordinate q (force F_q = F·d, d as in
    :func:`reaction_coordinate`), the force at q = 0 is -|λ|q‡; a model whose mean force
    over the samples differs from the reference's by ⟨ΔF_q⟩ has its top shifted by
    q‡ = -⟨ΔF_q⟩/|λ| (with the reference's curvature |λ|). Initial conditions on the
    reference's dividing surface then start on one side of the model's: at the Diels-Alder
    saddle point (GFN2-xTB) the reference shifted so by 0.05 Å·amu^1/2 (0.2 of the reaction
    coordinate's Wigner width at 300 K) turned 81 of 100 direct trajectories into 89, or 75
    the other way. ``error`` is the standard error of the mean over the samples.
    """
    from ase_al.calculators.committee import predict_batch

    samples = list(samples)
    if len(samples) < 2:
        raise ValueError("a barrier-top check needs at least 2 labelled samples")
    k, direction, curvature = reaction_coordinate(saddle, vibrations)
    reference = np.array([np.asarray(a.get_forces(), float).ravel() for a in samples])
    predicted = np.asarray(predict_batch(model, samples, forces=True)["forces"], float)
    difference = (predicted.reshape(len(samples), -1) - reference) @ direction
    shifts = -difference / curvature
    shift = float(shifts.mean())
    return BarrierCheck(
        shift=shift,
        error=float(shifts.std(ddof=1) / np.sqrt(len(shifts))),
        width=float(wigner_widths(vibrations, temperature)[k]),
        shift_A=shift * float(np.linalg.norm(direction)),
        tolerance=float(tolerance),
        n=len(samples),
    )


__all__ = [
    "BARRIER_SAMPLES",
    "BarrierCheck",
    "FLOOR_CM1",
    "ModeCheck",
    "check_barrier_top",
    "check_modes",
    "frequencies_along_modes",
    "mode_directions",
    "reaction_coordinate",
    "wigner_widths",
]
