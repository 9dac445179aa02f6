"""Initial conditions from the Wigner distribution of harmonic normal modes.

For a harmonic mode of angular frequency ω in mass-weighted coordinates, the Wigner
distribution at temperature T is a Gaussian in position and momentum with variances
    <q²> = ħ/(2ω) · coth(ħω / 2kT),   <p²> = ħω/2 · coth(ħω / 2kT)
(T = 0 gives the ground vibrational state, coth → 1). ASE's ``phonon_harmonics`` is built
for crystals (it removes only the three translations), so molecules are sampled here with
rotations projected out as well.
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms, units
from ase.vibrations import VibrationsData

from ase_al.errors import same_atoms
from ase_al.options import check_int
from ase_al.simulations import HBAR, IMAGINARY_CM1, HarmonicAnalysis


def _as_harmonic_analysis(vibrations) -> HarmonicAnalysis:
    if isinstance(vibrations, HarmonicAnalysis):
        return vibrations
    if isinstance(vibrations, VibrationsData):
        return HarmonicAnalysis.from_vibrations(vibrations)
    raise TypeError("vibrations must be the result of ase_al.freq or an ase VibrationsData")


def remove_rigid_motion(atoms: Atoms) -> None:
    """Zero the total linear and angular momentum of ``atoms`` in place (linear molecules too)."""
    masses = atoms.get_masses()
    momenta = atoms.get_momenta()
    momenta -= masses[:, None] * momenta.sum(axis=0) / masses.sum()
    centred = atoms.get_positions() - atoms.get_center_of_mass()
    angular_momentum = np.cross(centred, momenta).sum(axis=0)
    inertia = np.einsum("i,ij,ik->jk", masses, centred, centred)
    inertia = np.trace(inertia) * np.eye(3) - inertia
    # pinv: a linear molecule has no rotation about its axis to remove
    omega = np.linalg.pinv(inertia, rcond=1e-8) @ angular_momentum
    momenta -= masses[:, None] * np.cross(omega, centred)
    atoms.set_momenta(momenta, apply_constraint=False)


def wigner(
    atoms: Atoms,
    vibrations: HarmonicAnalysis | VibrationsData,
    n: int,
    temperature: float = 0.0,
    seed: int | None = None,
    freeze_below_cm1: float = 0.0,
    free_modes: int = 0,
) -> list[Atoms]:
    """Sample ``n`` geometries with momenta from the harmonic Wigner distribution.

    Parameters
    ----------
    atoms : Atoms
        The equilibrium geometry the modes belong to (same atoms and order).
    vibrations : HarmonicAnalysis or VibrationsData
        Normal modes, e.g. from :func:`ase_al.freq`.
    n : int
        Number of samples.
    temperature : float
        K; 0 samples the vibrational ground state.
    seed : int, optional
        Seed for reproducible samples.
    freeze_below_cm1 : float
        Modes below this frequency (cm⁻¹) stay at the equilibrium position; their momenta are
        still drawn. The harmonic position spread of a mode grows as 1/ω, and a soft mode (an
        intermolecular motion in a complex, a torsion) displaced along its straight Cartesian
        line bends and breaks bonds: the ethene–butadiene complex's six modes below
        100 cm⁻¹ at 300 K give structures 270 kcal/mol above the minimum on average, most of
        them in fragments. The momenta carry the thermal energy of those modes (at most
        about kT each) into dynamics on the real surface. Default 0: every mode sampled.
    free_modes : int
        The ``free_modes`` modes nearest zero frequency are free motions, not vibrations:
        the relative translations and rotations of separate molecules (6 for a second
        non-linear molecule), whose frequencies come out near zero, real or imaginary. They
        keep their positions and get classical thermal momenta (mass-weighted standard
        deviation √(kT); none at 0 K). Default 0: a single molecule or a bound complex.

    Returns
    -------
    list[Atoms]
        Structures with positions (Å) and momenta (ASE units) set, zero total linear and
        angular momentum, ``info["sampling_temperature_K"]``; no calculator attached.
    """
    analysis = _as_harmonic_analysis(vibrations)
    reference = analysis.get_atoms()
    if not same_atoms(atoms, reference.numbers):
        raise ValueError(
            "atoms and vibrations describe different molecules (atoms or order differ)"
        )
    if n < 1:
        raise ValueError(f"n must be a positive number of samples, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 K, got {temperature}")
    omega = analysis.angular_frequencies
    free = _free(omega, free_modes)
    if np.any(omega[~free] <= 0):
        raise ValueError(
            "Wigner sampling needs a minimum; imaginary or zero modes at "
            f"{analysis.frequencies[~free & (omega <= 0)].round(1)} cm⁻¹"
            + ("" if free_modes else " (separate molecules: give free_modes)")
        )
    frozen = _frozen(analysis, freeze_below_cm1) | free
    _warn_about_soft_modes(analysis, temperature, frozen)
    rng = np.random.default_rng(seed)
    q = np.zeros((n, omega.size))
    p = np.zeros((n, omega.size))
    q[:, ~free], p[:, ~free] = _wigner_draws(omega[~free], temperature, n, rng)
    p[:, free] = rng.standard_normal((n, int(free.sum()))) * np.sqrt(units.kB * temperature)
    q[:, frozen] = 0.0
    return _structures(atoms, analysis, q, p, dict(atoms.info), temperature)


def _free(omega: np.ndarray, free_modes: int) -> np.ndarray:
    """Which modes are free motions: the ``free_modes`` nearest zero frequency."""
    check_int("free_modes", free_modes, minimum=0)
    if free_modes > omega.size:
        raise ValueError(f"free_modes = {free_modes}, but there are only {omega.size} modes")
    free = np.zeros(omega.size, dtype=bool)
    free[np.argsort(np.abs(omega), kind="stable")[:free_modes]] = True
    return free


#: a mode whose Wigner spread moves some atom farther than this (Å, RMS) is worth a warning
SOFT_MODE_SPREAD = 0.5


def _warn_about_soft_modes(analysis: HarmonicAnalysis, temperature: float, frozen) -> None:
    """Warn when a sampled (real, not frozen) mode's position spread moves an atom by more
    than :data:`SOFT_MODE_SPREAD` Å RMS: displaced along a straight line, it breaks bonds."""
    omega = analysis.angular_frequencies
    sampled = (omega > 0) & ~frozen
    if not sampled.any():
        return
    width, _ = _wigner_widths(omega[sampled], temperature)  # mass-weighted, per mode
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(analysis.get_atoms().get_masses(), 3))
    cartesian = (analysis.mass_weighted_modes[sampled] * inv_sqrt_m).reshape(len(width), -1, 3)
    spread = width * np.linalg.norm(cartesian, axis=2).max(axis=1)
    soft = spread > SOFT_MODE_SPREAD
    if soft.any():
        warnings.warn(
            f"Wigner sampling at {temperature:g} K: the modes at "
            f"{analysis.frequencies[sampled][soft].round(1).tolist()} cm⁻¹ move atoms by up to "
            f"{spread[soft].max():.2f} Å (RMS); displaced along straight lines, such soft modes "
            "bend and break bonds. freeze_below_cm1 keeps them at their equilibrium positions "
            "(with thermal momenta)",
            stacklevel=3,
        )


def _frozen(analysis: HarmonicAnalysis, freeze_below_cm1: float) -> np.ndarray:
    """Which real modes keep their equilibrium position (frequency below the cutoff, cm⁻¹)."""
    if not (np.isfinite(freeze_below_cm1) and freeze_below_cm1 >= 0):
        raise ValueError(f"freeze_below_cm1 must be >= 0 cm⁻¹, got {freeze_below_cm1}")
    frequencies = analysis.frequencies
    return (frequencies > 0) & (frequencies < freeze_below_cm1)


def _wigner_widths(omega, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations of the mass-weighted coordinate and momentum of harmonic modes
    with angular frequencies ``omega`` at ``temperature`` (K; 0: ground state)."""
    occupation = np.ones_like(omega)
    if temperature > 0:
        occupation = 1.0 / np.tanh(HBAR * omega / (2 * units.kB * temperature))
    return np.sqrt(HBAR / (2 * omega) * occupation), np.sqrt(HBAR * omega / 2 * occupation)


def _wigner_draws(omega, temperature: float, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Normal-mode coordinates and momenta (n, modes) from the harmonic Wigner distribution
    of modes with angular frequencies ``omega`` at ``temperature`` (K; 0: ground state)."""
    q_width, p_width = _wigner_widths(omega, temperature)
    q = rng.standard_normal((n, omega.size)) * q_width
    p = rng.standard_normal((n, omega.size)) * p_width
    return q, p


def _structures(atoms, analysis, q, p, info: dict, temperature: float) -> list[Atoms]:
    """Structures displaced from ``atoms`` by normal-mode coordinates ``q`` with momenta from
    ``p`` (mass-weighted, (n, modes)), rigid-body motion removed, ``info`` copied in."""
    masses = np.repeat(atoms.get_masses(), 3)
    displacements = (q @ analysis.mass_weighted_modes) / np.sqrt(masses)
    momenta = (p @ analysis.mass_weighted_modes) * np.sqrt(masses)
    samples = []
    for dx, mom in zip(displacements, momenta, strict=True):
        sample = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions + dx.reshape(-1, 3))
        sample.set_masses(atoms.get_masses())
        sample.set_momenta(mom.reshape(-1, 3))
        remove_rigid_motion(sample)
        sample.info.update(info)
        sample.info["sampling_temperature_K"] = float(temperature)
        samples.append(sample)
    return samples


def transition_state_sampling(
    saddle: Atoms,
    vibrations: HarmonicAnalysis | VibrationsData,
    n: int,
    temperature: float = 300.0,
    seed: int | None = None,
    direction: str = "forward",
    freeze_below_cm1: float = 0.0,
) -> list[Atoms]:
    """Quasi-classical initial conditions at a transition state.

    The real modes are sampled from their harmonic Wigner distribution at ``temperature``
    (as :func:`wigner`); the reaction coordinate (the one imaginary mode) stays at the saddle
    point and gets a momentum from the thermal flux distribution through the dividing surface,
    P(p) ∝ p·exp(−p²/2kT) for p > 0 (mass-weighted, i.e. a Rayleigh distribution with
    ⟨p²⟩ = 2kT): every trajectory crosses the barrier top.

    Parameters
    ----------
    saddle : Atoms
        The transition structure the modes belong to (e.g. from
        :func:`ase_al.find_transition_state`).
    vibrations : HarmonicAnalysis or VibrationsData
        Its harmonic analysis: exactly one imaginary mode.
    n : int
        Number of samples.
    temperature : float
        K (> 0: the flux distribution needs a temperature).
    seed : int, optional
        Seed for reproducible samples.
    direction : {"forward", "backward", "random"}
        Sign of the reaction-coordinate momentum: along ``+modes[imaginary]``, against it, or
        either with probability ½. Run a forward sample backward in time by negating all its
        momenta.
    freeze_below_cm1 : float
        Real modes below this frequency (cm⁻¹) stay at the saddle point's position, with
        their momenta drawn (as in :func:`wigner`).

    Returns
    -------
    list[Atoms]
        Structures with positions and momenta, zero total linear and angular momentum,
        ``info["sampling_temperature_K"]`` and ``info["reaction_coordinate_momentum"]``
        (mass-weighted, amu^½·Å/ASE-time; its sign says the direction).
    """
    analysis = _as_harmonic_analysis(vibrations)
    if not same_atoms(saddle, analysis.get_atoms().numbers):
        raise ValueError(
            "saddle and vibrations describe different molecules (atoms or order differ)"
        )
    if n < 1:
        raise ValueError(f"n must be a positive number of samples, got {n}")
    if temperature <= 0:
        raise ValueError(f"transition-state sampling needs a temperature > 0 K, got {temperature}")
    if direction not in ("forward", "backward", "random"):
        raise ValueError(f"direction must be 'forward', 'backward' or 'random', got {direction!r}")
    omega = analysis.angular_frequencies
    imaginary = np.flatnonzero(analysis.frequencies < IMAGINARY_CM1)
    if len(imaginary) != 1:
        raise ValueError(
            "transition-state sampling needs exactly one imaginary mode, found "
            f"{len(imaginary)} ({analysis.frequencies[imaginary].round(1)} cm⁻¹)"
        )
    real = np.setdiff1d(np.arange(omega.size), imaginary)
    if np.any(omega[real] <= 0):
        raise ValueError(f"modes at {analysis.frequencies[real][omega[real] <= 0]} cm⁻¹ are soft")
    frozen = _frozen(analysis, freeze_below_cm1)
    _warn_about_soft_modes(analysis, temperature, frozen)
    rng = np.random.default_rng(seed)
    q = np.zeros((n, omega.size))
    p = np.zeros((n, omega.size))
    q[:, real], p[:, real] = _wigner_draws(omega[real], temperature, n, rng)
    q[:, frozen] = 0.0
    kt = units.kB * temperature
    flux = np.sqrt(-2.0 * kt * np.log(1.0 - rng.random(n)))  # Rayleigh, ⟨p²⟩ = 2kT
    sign = {"forward": np.ones(n), "backward": -np.ones(n)}.get(direction)
    if sign is None:
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    p[:, imaginary[0]] = sign * flux
    info = {key: value for key, value in saddle.info.items() if key != "transition_state"}
    samples = _structures(saddle, analysis, q, p, info, temperature)
    for sample, momentum in zip(samples, p[:, imaginary[0]], strict=True):
        sample.info["reaction_coordinate_momentum"] = float(momentum)
    return samples
