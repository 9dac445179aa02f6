"""Infrared spectra: harmonic (frequencies + intensities) and anharmonic from MD dipoles.

Harmonic: Lorentzian bands at the normal-mode wavenumbers, areas equal to the intensities
(km/mol), so the spectrum is in km/mol per cm⁻¹. From MD: the Fourier transform of the
autocorrelation of the dipole's time derivative (Hann-windowed), which includes
anharmonicity and temperature; its scale is arbitrary (normalised to a maximum of 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import units

from ase_al.files import atomic_write
from ase_al.options import renames

#: speed of light in cm per fs
C_CM_PER_FS = units._c * 100 * 1e-15


def lorentzian_spectrum(
    wavenumbers: np.ndarray, intensities: np.ndarray, grid: np.ndarray, fwhm: float = 20.0
) -> np.ndarray:
    """Σ_k I_k · L(ν − ν_k): Lorentzians of full width ``fwhm`` (cm⁻¹), unit area each, so
    the result (km/mol per cm⁻¹ for I in km/mol) integrates to Σ I_k."""
    half = fwhm / 2.0
    nu = np.asarray(wavenumbers, float)[:, None]
    lines = half / np.pi / ((np.asarray(grid, float)[None, :] - nu) ** 2 + half**2)
    return np.asarray(intensities, float) @ lines


def harmonic_ir(vibrations, grid=None, fwhm: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """(grid cm⁻¹, absorbance km/mol/cm⁻¹) of a :class:`~ase_al.simulations.HarmonicAnalysis`
    with IR intensities."""
    if vibrations.ir_intensities is None:
        raise ValueError("these vibrations have no IR intensities (no dipoles from the method)")
    if grid is None:
        grid = np.arange(0.0, 4000.0 + 1e-9, 1.0)
    return grid, lorentzian_spectrum(vibrations.frequencies, vibrations.ir_intensities, grid, fwhm)


@renames(time_step="time_step_fs")
def ir_from_dipoles(
    dipoles: np.ndarray, time_step_fs: float, grid=None, max_correlation_time: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Anharmonic IR spectrum from a dipole time series (e·Å) sampled every ``time_step_fs`` fs.

    I(ν) ∝ |FT[⟨μ̇(0)·μ̇(t)⟩ · w(t)]|, with μ̇ by central differences and a Hann window w of
    length ``max_correlation_time`` (fs; default half the trajectory). Normalised to max 1.
    """
    dipoles = np.asarray(dipoles, float)
    if dipoles.ndim != 2 or dipoles.shape[1] != 3 or len(dipoles) < 8:
        raise ValueError("dipoles must be a (T >= 8, 3) array")
    derivative = np.gradient(dipoles, time_step_fs, axis=0)
    derivative -= derivative.mean(axis=0)
    n = len(derivative)
    lags = n // 2 if max_correlation_time is None else int(max_correlation_time / time_step_fs)
    lags = max(2, min(lags, n - 1))
    padded = np.fft.rfft(derivative, n=2 * n, axis=0)
    correlation = np.fft.irfft(np.sum(np.abs(padded) ** 2, axis=1), n=2 * n)[:lags]
    correlation /= n - np.arange(lags)  # unbiased estimate at each lag
    window = np.hanning(2 * lags)[lags:]
    signal = correlation * window
    # cosine transform of the even correlation function: C(0) + 2 Σ_{t>0} C(t) cos(ωt)
    size = 16 * lags  # zero padding: a smooth curve on the output grid
    frequencies = np.fft.rfftfreq(size, d=time_step_fs)  # 1/fs
    spectrum = np.clip(2.0 * np.fft.rfft(signal, n=size).real - signal[0], 0.0, None)
    wavenumbers = frequencies / C_CM_PER_FS
    if grid is None:
        grid = np.arange(0.0, 4000.0 + 1e-9, 1.0)
    intensity = np.interp(grid, wavenumbers, spectrum)
    peak = intensity.max()
    return grid, intensity / peak if peak > 0 else intensity


def write_spectrum(path: str | Path, grid, intensity, header: str) -> None:
    """Two columns (wavenumber/cm⁻¹, intensity) with a header line."""
    with atomic_write(path) as partial:
        np.savetxt(partial, np.column_stack([grid, intensity]), header=header, fmt="%.4f %.8e")


def plot_spectrum(path: str | Path, grid, intensity, ylabel: str, title: str = "") -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(grid, intensity)
    ax.set(xlabel="wavenumber / cm$^{-1}$", ylabel=ylabel, title=title)
    ax.invert_xaxis()
    with atomic_write(path) as partial:
        fig.savefig(partial, dpi=120, format="png")
