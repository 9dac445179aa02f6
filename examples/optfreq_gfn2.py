"""Geometry optimisation, harmonic frequencies, IR spectrum and thermochemistry with GFN2-xTB.

    python examples/optfreq_gfn2.py [MOLECULE]   (default H2O; any ase.build.molecule name)

Writes MOLECULE_opt.traj (the optimisation path; `ase gui MOLECULE_opt.traj`) and
MOLECULE_ir.png (the harmonic IR stick spectrum, Lorentzian-broadened).
"""

import sys

import numpy as np
from ase.build import molecule

import ase_al
from ase_al.spectra.ir import harmonic_ir, plot_spectrum

name = sys.argv[1] if len(sys.argv) > 1 else "H2O"
calc = ase_al.methods("GFN2-xTB")
eq = ase_al.optimize_geometry(molecule(name), calc, fmax=1e-4, trajectory=f"{name}_opt.traj")
vib = ase_al.freq(eq, calc)
thermo = vib.thermochemistry(temperature=298.15)

print(f"{name} GFN2-xTB: E = {eq.get_potential_energy():.6f} eV")
print(" mode   wavenumber/cm-1   IR intensity/(km/mol)")
for k, (nu, ir) in enumerate(zip(vib.frequencies, vib.ir_intensities, strict=True)):
    print(f"{k:5d} {nu:17.1f} {ir:23.2f}")
print(
    f"ZPE {thermo['zpe']:.4f} eV, H(298 K) {thermo['enthalpy']:.6f} eV, "
    f"G(298 K) {thermo['gibbs']:.6f} eV (symmetry number 1 assumed)"
)

grid, spectrum = harmonic_ir(vib, np.linspace(400, 4000, 3601), fwhm=20.0)  # Lorentzians
plot_spectrum(
    f"{name}_ir.png",
    grid,
    spectrum,
    "absorbance / (km/mol/cm$^{-1}$)",
    f"{name}, GFN2-xTB harmonic IR",
)
print(f"wrote {name}_opt.traj and {name}_ir.png")
