"""NVE molecular dynamics with any ase-al calculator, from a Wigner initial condition.

    python examples/md_gfn2.py [STEPS]      (default 500 steps of 0.5 fs)

Writes md.traj (`ase gui md.traj` plays it) and md.log (time, energies, temperature).
"""

import sys

from ase import units
from ase.build import molecule
from ase.md.verlet import VelocityVerlet

import ase_al

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 500
calc = ase_al.methods("GFN2-xTB")
eq = ase_al.optimize_geometry(molecule("CH3OH"), calc, fmax=1e-3)
vib = ase_al.freq(eq, calc, ir=False)
atoms = ase_al.samplers.wigner(eq, vib, n=1, temperature=300, seed=1)[0]
atoms.calc = calc

dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs, trajectory="md.traj", logfile="md.log")
dyn.run(steps)
print(f"{steps} steps done; total energy {atoms.get_total_energy():.4f} eV; wrote md.traj, md.log")
