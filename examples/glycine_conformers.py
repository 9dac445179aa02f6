"""Glycine's conformers with GFN2-xTB: RDKit embeddings, optimised, deduplicated, each a minimum;
then, with a MODEL, one potential actively learned across all of them and checked against the
reference conformer by conformer.

    python examples/glycine_conformers.py [WORKDIR] [N_EMBED] [MODEL] [MAX_EPOCHS] [TARGET]

Without MODEL (about a minute on two cores with 40 embeddings): WORKDIR/conformers.traj (open
with ``ase gui``), WORKDIR/conformers.png and a table of relative energies (kcal/mol) and
Boltzmann populations at 298 K.

With MODEL (``ANI``, ``MACE`` or ``KREG``; MAX_EPOCHS for the networks): every conformer is a
starting structure of one ``ase_al.ActiveLearner`` (equal weights, so that high-lying
conformers are learned as well as the populated ones; torsions below 100 cm-1 sampled by
momentum only; each conformer also optimised on every iteration's model, the first uncertain
structure of its path labelled; the learned potential's reference geometry is the lowest
conformer). The final
model then re-optimises every conformer from the reference geometry; the table compares
relative energies (learned at its own minima vs GFN2-xTB at its own) and the all-atom RMSD
between the two minima; WORKDIR/learned.png plots both, WORKDIR/summary.json holds the numbers.
The learner runs until its checks of certain structures meet TARGET (kcal/mol, default 1;
``Uncertainty(target_error=...)``), the networks continuing from the previous iteration's
weights (``warm_start``). Plan on an hour or more for ANI on two cores; a killed run resumes.
KREG learns forces through a matrix that grows with the data (31 rows per glycine structure),
so it is not the model for the thousand-odd structures several conformers need.
"""

import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import units  # noqa: E402
from ase.io import read, write  # noqa: E402

import ase_al  # noqa: E402
from ase_al.conformers import reoptimize  # noqa: E402

workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "glycine_conformers")
n_embed = int(sys.argv[2]) if len(sys.argv) > 2 else 40
model_name = sys.argv[3] if len(sys.argv) > 3 else None
max_epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 300
target_kcal_mol = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
try:  # an unknown model name fails here, in one line, before any calculation
    cls = ase_al.calculators.model_class(model_name) if model_name else None
except ValueError as err:
    sys.exit(f"{Path(__file__).name}: {err}")
workdir.mkdir(parents=True, exist_ok=True)
kcal_mol = units.kcal / units.mol

if not (workdir / "conformers.traj").exists():
    found = ase_al.conformers("NCC(=O)O", "GFN2-xTB", n_embed=n_embed, seed=0, progress=False)
    for c in found:
        c.atoms.info["reference_energy"] = c.energy  # eV
        c.atoms.info["lowest_mode_cm1"] = float(c.vibrations.frequencies.min())
    write(workdir / "conformers.traj", [c.atoms for c in found])
conformers = read(workdir / "conformers.traj", ":")
energies = np.array([a.info["reference_energy"] for a in conformers])
relative = (energies - energies[0]) / kcal_mol
boltzmann = np.exp(-(energies - energies[0]) / (units.kB * 298.15))
populations = boltzmann / boltzmann.sum()

print(f"{len(conformers)} conformers from {n_embed} embeddings (GFN2-xTB)")
columns = ("#", "E - E_min / kcal mol-1", "population 298 K", "lowest mode / cm-1")
print(" ".join(f"{c:>{w}s}" for c, w in zip(columns, (2, 22, 17, 19), strict=True)))
for k, (atoms, e, p) in enumerate(zip(conformers, relative, populations, strict=True)):
    print(f"{k:2d} {e:22.2f} {p:17.3f} {atoms.info['lowest_mode_cm1']:19.1f}")

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.bar(range(len(conformers)), relative, color="tab:blue")
ax.set_xlabel("conformer")
ax.set_ylabel("E − E_min / kcal mol⁻¹")
ax.set_title("glycine, GFN2-xTB")
fig.tight_layout()
fig.savefig(workdir / "conformers.png", dpi=120)
print(f"wrote {workdir / 'conformers.traj'} and {workdir / 'conformers.png'}")
if model_name is None:
    print(
        "learn one potential across all of them: python examples/glycine_conformers.py "
        f"{workdir} {n_embed} ANI"
    )
    sys.exit()

# -- one potential for all conformers -----------------------------------------------------------
t0 = time.perf_counter()
networks = model_name.upper() != "KREG"  # ANI, MACE: max_epochs, continued each iteration
pair = ase_al.ActiveLearner(
    [a.copy() for a in conformers],
    "GFN2-xTB",
    model=cls(max_epochs=max_epochs) if networks else cls(),
    workdir=workdir / "al",
    # the torsions below 100 cm-1 keep their positions in the Wigner samples and get thermal
    # momenta: displaced harmonically, the 16 cm-1 torsion of the highest conformer breaks
    # 13 of 30 samples into fragments (161 kcal/mol above the minimum on average)
    # and each conformer is also optimised on every iteration's model, its path labelled where
    # the model is uncertain: where the final re-optimisation of the conformers will go
    sampling=ase_al.Sampling(freeze_below_cm1=100.0, relax_starting_points=True),
    uncertainty=ase_al.Uncertainty(target_error=target_kcal_mol * kcal_mol),
    warm_start=networks,
).run()
learning_s = time.perf_counter() - t0
run = ase_al.ALRun(workdir / "al")
main = pair.members[0]

learned_energies, rmsds = reoptimize(conformers, main)  # the learned minima
learned_relative = (learned_energies - learned_energies[0]) / kcal_mol
deviation = learned_relative - relative
rmsds = rmsds.tolist()

print(f"\n{model_name} learned with {len(run.labelled())} GFN2-xTB labels in {learning_s:.0f} s")
print(" #  GFN2-xTB  learned  deviation  (kcal/mol)  RMSD/Å")
for k, rmsd in enumerate(rmsds):
    print(f"{k:2d} {relative[k]:9.2f} {learned_relative[k]:8.2f} {deviation[k]:10.2f} {rmsd:19.3f}")
print(
    f"largest |deviation| {np.abs(deviation).max():.2f} kcal/mol, largest RMSD {max(rmsds):.3f} Å"
)
summary = {
    "model": model_name,
    "target_error_kcal_mol": target_kcal_mol,
    "labels": len(run.labelled()),
    "iterations": len(run.history),
    "converged": run.converged,
    "learning_s_this_call": learning_s,
    "reference_kcal_mol": relative.tolist(),
    "learned_kcal_mol": learned_relative.tolist(),
    "deviation_kcal_mol": deviation.tolist(),
    "rmsd_A": rmsds,
    "max_abs_deviation_kcal_mol": float(np.abs(deviation).max()),
    "max_rmsd_A": float(max(rmsds)),
}
(workdir / "summary.json").write_text(json.dumps(summary, indent=1))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
x = np.arange(len(conformers))
ax1.bar(x - 0.2, relative, 0.4, label="GFN2-xTB")
ax1.bar(x + 0.2, learned_relative, 0.4, label=model_name)
ax1.set_xlabel("conformer")
ax1.set_ylabel("E − E_min / kcal mol⁻¹")
ax1.legend()
ax2.bar(x, rmsds, color="tab:green")
ax2.set_xlabel("conformer")
ax2.set_ylabel("RMSD of the learned minimum / Å")
fig.suptitle(f"glycine: {model_name} learned from {len(run.labelled())} GFN2-xTB labels")
fig.tight_layout()
fig.savefig(workdir / "learned.png", dpi=120)
print(f"wrote {workdir / 'summary.json'} and {workdir / 'learned.png'}")
