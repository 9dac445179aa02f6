"""Absorption cross sections from a nuclear ensemble (NEA) or a single point (SPC).

    σ(E) = (π e² ħ) / (2 mₑ c ε₀ E) · Σₙ (1/N_p) Σᵢ ΔE₀ₙ(xᵢ) f₀ₙ(xᵢ) g(E − ΔE₀ₙ(xᵢ); δ)

with g a normalised Gaussian of standard deviation δ/2 (Crespo-Otero & Barbatti, Theor. Chem.
Acc. 131, 1237 (2012)). The prefactor carries ħ, not h: it is the one for which a band
integrates to ∫σ dE = π e² ħ f / (2 ε₀ mₑ c) ≈ 1.0976 f eV·Å² (the Thomas–Reiche–Kuhn
oscillator-strength sum rule, ∫σ(ω) dω = π e² f / (2 ε₀ mₑ c)); with h every band would be
2π times too strong. Energies in eV, cross sections in Å², wavelengths in nm.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase import units as u

#: π e² ħ / (2 mₑ c ε₀) in eV·Å² (SI constants from ase.units, converted)
PREFACTOR = (
    np.pi
    * u._e**2
    * u._hbar
    / (2 * u._me * u._c * u._eps0)  # J·m²
    / u._e  # -> eV·m²
    * 1e20  # -> eV·Å²
)
#: hc in eV·nm, for wavelengths
HC_EV_NM = u._hplanck * u._c / u._e * 1e9


def cross_section(
    excitation_energies,
    oscillator_strengths,
    energies_grid,
    delta: float = 0.05,
) -> np.ndarray:
    """NEA absorption cross section on ``energies_grid``.

    Parameters
    ----------
    excitation_energies : array (N_points, N_states) or (N_states,)
        ΔE₀ₙ in eV for every ensemble geometry (one row for a single point).
    oscillator_strengths : array, same shape
        f₀ₙ (dimensionless, length gauge).
    energies_grid : array (N_grid,)
        Photon energies E in eV (> 0).
    delta : float
        Broadening δ in eV; the Gaussian's standard deviation is δ/2.

    Returns
    -------
    ndarray (N_grid,)
        σ(E) in Å².
    """
    de = np.atleast_2d(np.asarray(excitation_energies, dtype=float))
    f = np.atleast_2d(np.asarray(oscillator_strengths, dtype=float))
    grid = np.asarray(energies_grid, dtype=float)
    if de.shape != f.shape:
        raise ValueError(
            f"excitation energies {de.shape} and oscillator strengths {f.shape} differ"
        )
    if np.any(grid <= 0):
        raise ValueError("the energy grid must be positive (eV)")
    if delta <= 0:
        raise ValueError("delta must be a positive broadening in eV")
    if not (np.all(np.isfinite(de)) and np.all(np.isfinite(f))):
        raise ValueError("excitation energies or oscillator strengths contain NaN/inf")
    width = delta / 2
    n_points = de.shape[0]
    de, f = de.ravel(), f.ravel()
    gauss = np.exp(-0.5 * ((grid[:, None] - de[None, :]) / width) ** 2) / (
        width * np.sqrt(2 * np.pi)
    )
    return PREFACTOR / grid * (gauss @ (de * f)) / n_points


def wavelengths(energies_grid) -> np.ndarray:
    """Photon energies (eV) as wavelengths (nm)."""
    return HC_EV_NM / np.asarray(energies_grid, dtype=float)


def excited_states(images: list[Atoms], calc) -> tuple[np.ndarray, np.ndarray]:
    """Excitation energies (eV) and oscillator strengths of every structure, (N, N_states)."""
    energies, strengths = [], []
    for atoms in images:
        work = atoms.copy()
        work.calc = calc
        energies.append(calc.get_property("excitation_energies", work))
        strengths.append(calc.get_property("oscillator_strengths", work))
    return np.array(energies), np.array(strengths)


def spc(atoms: Atoms, calc, energies_grid, delta: float = 0.3) -> np.ndarray:
    """Single-point convolution: the cross section (Å²) of one geometry, Gaussian-broadened."""
    de, f = excited_states([atoms], calc)
    return cross_section(de, f, energies_grid, delta)


def qc_nea(ensemble: list[Atoms], calc, energies_grid, delta: float = 0.05) -> np.ndarray:
    """QC-NEA: the cross section (Å²) with every ensemble geometry computed by ``calc``."""
    de, f = excited_states(ensemble, calc)
    return cross_section(de, f, energies_grid, delta)
