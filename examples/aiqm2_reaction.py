"""Keto-enol tautomerisation with AIQM2, vinyl alcohol -> acetaldehyde (1,3-H shift): both
minima, the barrier by climbing-image NEB, and the uncertainty (spread of AIQM2's eight
networks) next to every energy.

    python examples/aiqm2_reaction.py [WORKDIR]

Needs AIQM2's parameters: ``pip install --no-deps mlatom`` (only its files are read). Writes
WORKDIR/path.traj (open with ``ase gui``), WORKDIR/profile.png and prints a table. About a
minute on two cores.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.io import write  # noqa: E402
from ase.mep import NEB  # noqa: E402
from ase.optimize import FIRE  # noqa: E402
from ase.units import Hartree, kcal, mol  # noqa: E402

import ase_al  # noqa: E402

workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "aiqm2_reaction")
workdir.mkdir(parents=True, exist_ok=True)
aiqm2 = ase_al.methods("AIQM2")
kcal_mol = kcal / mol

# vinyl alcohol CH2=CH-OH; atom 3 is the H that moves from O to the CH2 carbon (atom 0)
enol = Atoms(
    "CCOHHHH",
    [
        (0.0, 0.0, 0.0),
        (1.33, 0.0, 0.0),
        (2.05, 1.15, 0.0),
        (1.55, 1.95, 0.0),
        (1.85, -0.95, 0.0),
        (-0.55, 0.93, 0.0),
        (-0.55, -0.93, 0.0),
    ],
)
keto = enol.copy()  # acetaldehyde, same atom order: the H now on atom 0, above the plane
keto.positions[3] = (-0.36, 0.0, 1.03)
keto.positions[5:] = [(-0.36, 0.89, -0.51), (-0.36, -0.89, -0.51)]
keto.positions[1] = (1.50, 0.0, 0.0)
keto.positions[2] = (2.15, 1.05, 0.0)
enol = ase_al.optimize_geometry(enol, aiqm2, fmax=0.01)
keto = ase_al.optimize_geometry(keto, aiqm2, fmax=0.01)
for name, atoms in (("vinyl alcohol", enol), ("acetaldehyde", keto)):
    vib = ase_al.freq(atoms, aiqm2)
    assert np.all(vib.frequencies[6:] > 50), f"{name}: not a minimum ({vib.frequencies})"

# the path: image-dependent pair potential interpolation, then climbing-image NEB
images = [enol.copy() for _ in range(6)] + [keto.copy()]
for image in images:
    image.calc = ase_al.methods("AIQM2")
neb = NEB(images, climb=True, method="improvedtangent")
neb.interpolate(method="idpp")
converged = FIRE(neb, logfile=None).run(fmax=0.05, steps=500)
print(f"NEB {'converged' if converged else 'NOT converged'} (fmax 0.05 eV/Å)")
write(workdir / "path.traj", images)

rows = []
for image in images:
    energy = image.get_potential_energy()
    rows.append((energy, image.calc.results["energy_uncertainty"]))
energies = np.array([r[0] for r in rows])
spread = np.array([r[1] for r in rows])
top = int(np.argmax(energies))
relative = (energies - energies[0]) / kcal_mol
print(f"{'image':>5s} {'E - E(enol) kcal/mol':>21s} {'network spread kcal/mol':>24s}")
for k, (e, s) in enumerate(zip(relative, spread / kcal_mol, strict=True)):
    mark = "  <- saddle point (climbing image)" if k == top else ""
    print(f"{k:5d} {e:21.2f} {s:24.2f}{mark}")
print(f"barrier {relative[top]:.1f} kcal/mol, reaction energy {relative[-1]:.1f} kcal/mol")
print(
    f"(total energies in Hartree: vinyl alcohol {energies[0] / Hartree:.6f}, "
    f"acetaldehyde {energies[-1] / Hartree:.6f})"
)

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.errorbar(range(len(relative)), relative, yerr=spread / kcal_mol, marker="o", capsize=3)
ax.set_xlabel("NEB image (vinyl alcohol → acetaldehyde)")
ax.set_ylabel("E − E(vinyl alcohol) / kcal mol⁻¹")
ax.set_title("AIQM2; bars: spread of the eight networks")
fig.tight_layout()
fig.savefig(workdir / "profile.png", dpi=120)
print(f"wrote {workdir / 'path.traj'} and {workdir / 'profile.png'}")
