"""Glycine's conformers with GFN2-xTB: RDKit embeddings, optimised, deduplicated, each a minimum,
then (optionally) active learning started from all of them.

    python examples/glycine_conformers.py [WORKDIR] [N_EMBED]

Writes WORKDIR/conformers.traj (open with ``ase gui``), WORKDIR/conformers.png and prints a
table of relative energies (kcal/mol) and Boltzmann populations at 298 K. The conformers can
be handed to ``ase_al.ActiveLearner([c.atoms for c in found], ...)`` as starting structures,
with the populations as ``info["weight"]`` (shown at the end, not run: it takes minutes).
About a minute on two cores with 40 embeddings.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import units  # noqa: E402
from ase.io import write  # noqa: E402

import ase_al  # noqa: E402

workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "glycine_conformers")
n_embed = int(sys.argv[2]) if len(sys.argv) > 2 else 40
workdir.mkdir(parents=True, exist_ok=True)

found = ase_al.conformers("NCC(=O)O", "GFN2-xTB", n_embed=n_embed, seed=0, progress=False)
kcal_mol = units.kcal / units.mol
relative = np.array([c.relative_energy for c in found]) / kcal_mol
boltzmann = np.exp(-np.array([c.relative_energy for c in found]) / (units.kB * 298.15))
populations = boltzmann / boltzmann.sum()

print(f"{len(found)} conformers from {n_embed} embeddings (GFN2-xTB)")
columns = ("#", "E - E_min / kcal mol-1", "population 298 K", "lowest mode / cm-1")
print(" ".join(f"{c:>{w}s}" for c, w in zip(columns, (2, 22, 17, 19), strict=True)))
for k, (conformer, e, p) in enumerate(zip(found, relative, populations, strict=True)):
    lowest = conformer.vibrations.frequencies.min()
    print(f"{k:2d} {e:22.2f} {p:17.3f} {lowest:19.1f}")
    conformer.atoms.info["weight"] = float(p)
write(workdir / "conformers.traj", [c.atoms for c in found])

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.bar(range(len(found)), relative, color="tab:blue")
ax.set_xlabel("conformer")
ax.set_ylabel("E − E_min / kcal mol⁻¹")
ax.set_title("glycine, GFN2-xTB")
fig.tight_layout()
fig.savefig(workdir / "conformers.png", dpi=120)
print(f"wrote {workdir / 'conformers.traj'} and {workdir / 'conformers.png'}")
print(
    "active learning from all of them: ase_al.ActiveLearner([c.atoms for c in found], "
    "'GFN2-xTB', model='ANI', workdir='al_glycine').run()"
)
