"""Ethene + 1,3-butadiene -> cyclohexene (Diels-Alder) with GFN2-xTB: the transition state, the
minima it connects, and quasi-classical trajectories from the barrier top, classified.

    python examples/diels_alder.py [WORKDIR] [N_TRAJECTORIES] [FS_EACH_WAY]

1. Transition state by Sella from a guess (cyclohexene with the two new C-C bonds stretched),
   checked to have one imaginary mode; the descent both ways must give cyclohexene and
   ethene + butadiene.
2. N initial conditions by transition-state sampling at 300 K (real modes Wigner, the reaction
   coordinate with a thermal-flux momentum); each is run forward and, with all momenta
   reversed, backward, FS_EACH_WAY fs each (velocity Verlet, 0.5 fs).
3. Each half's end is classified by its bonds (covalent radii): a *direct* trajectory joins
   reactants and product; for the product half, the time between the formation of the two new
   C-C bonds says how asynchronous the reaction is.

Writes WORKDIR/ts.traj, WORKDIR/trajectories/*.traj, WORKDIR/outcomes/<class>.traj (ase gui),
WORKDIR/bond_times.png and a summary. About two minutes on two cores with the defaults. For
learning a potential across the reaction, hand [reactants, product, saddle] to
``ase_al.ActiveLearner`` (each becomes a starting structure).
"""

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.io import write  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402
from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

import ase_al  # noqa: E402
from ase_al.reactions import classify, descend_from_saddle, species  # noqa: E402
from ase_al.samplers import transition_state_sampling  # noqa: E402

workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "diels_alder")
n_trajectories = int(sys.argv[2]) if len(sys.argv) > 2 else 10
fs_each_way = float(sys.argv[3]) if len(sys.argv) > 3 else 100.0
(workdir / "trajectories").mkdir(parents=True, exist_ok=True)
calc = ase_al.methods("GFN2-xTB")

# cyclohexene C1=CCCCC1: C0=C1 is butadiene's central bond, C3-C4 the ethene; C2-C3 and C4-C5
# are the bonds the reaction forms
mol = Chem.AddHs(Chem.MolFromSmiles("C1=CCCCC1"))
AllChem.EmbedMolecule(mol, randomSeed=1)
AllChem.MMFFOptimizeMolecule(mol)
product = Atoms([a.GetSymbol() for a in mol.GetAtoms()], mol.GetConformer().GetPositions())
product = ase_al.optimize_geometry(product, calc, optimizer="LBFGS")
ethene = [3, 4] + [
    n.GetIdx()
    for i in (3, 4)
    for n in mol.GetAtomWithIdx(i).GetNeighbors()
    if n.GetAtomicNum() == 1
]
axis = product.positions[[3, 4]].mean(axis=0) - product.positions[[2, 5]].mean(axis=0)
guess = product.copy()
guess.positions[ethene] += 0.75 * axis / np.linalg.norm(axis)  # new bonds ~2.2 Å

saddle, vibrations = ase_al.find_transition_state(guess, calc)
write(workdir / "ts.traj", saddle)
backward, forward = descend_from_saddle(saddle, vibrations, calc, steps=400)
ends = {tuple(species(backward)): backward, tuple(species(forward)): forward}
assert set(ends) == {("C6H10",), ("C2H4", "C4H6")}, f"the saddle connects {list(ends)}"
reactants, cyclohexene = ends[("C2H4", "C4H6")], ends[("C6H10",)]
kcal_mol = units.kcal / units.mol
barrier = (saddle.get_potential_energy() - reactants.get_potential_energy()) / kcal_mol
reaction = (cyclohexene.get_potential_energy() - reactants.get_potential_energy()) / kcal_mol
print(
    f"transition state: C-C {saddle.get_distance(2, 3):.3f} and {saddle.get_distance(4, 5):.3f} Å, "
    f"{saddle.info['imaginary_frequency']:.0f} cm-1 (imaginary)"
)
print(f"GFN2-xTB: barrier {barrier:.1f}, reaction {reaction:.1f} kcal/mol (from the reactants)")
try:  # AIQM2 single points at the GFN2-xTB geometries, with the networks' spread
    aiqm2 = ase_al.methods("AIQM2")
    values = {}
    for name, atoms in (("reactants", reactants), ("saddle", saddle), ("product", cyclohexene)):
        probe = atoms.copy()
        probe.calc = aiqm2
        values[name] = (probe.get_potential_energy(), aiqm2.results["energy_uncertainty"])
    print(
        "AIQM2//GFN2-xTB: barrier "
        f"{(values['saddle'][0] - values['reactants'][0]) / kcal_mol:.1f}, reaction "
        f"{(values['product'][0] - values['reactants'][0]) / kcal_mol:.1f} kcal/mol (network "
        f"spread at the saddle point {values['saddle'][1] / kcal_mol:.2f} kcal/mol)"
    )
except FileNotFoundError as err:
    print(f"(AIQM2 single points skipped: {err})")

# trajectories from the barrier top, each half run separately
samples = transition_state_sampling(saddle, vibrations, n_trajectories, 300.0, seed=0)
steps = int(round(fs_each_way / 0.5))
halves = []
for k, start in enumerate(samples):
    pair = []
    for direction in (1.0, -1.0):
        atoms = start.copy()
        atoms.set_momenta(direction * start.get_momenta())
        atoms.calc = calc
        frames = []
        dynamics = VelocityVerlet(atoms, 0.5 * units.fs)
        dynamics.attach(lambda a=atoms, f=frames: f.append(a.copy()), interval=2)
        dynamics.run(steps)
        name = "forward" if direction > 0 else "backward"
        write(workdir / "trajectories" / f"{k:03d}_{name}.traj", frames)
        pair.append(frames)
    halves.append(pair)

flat = [half for pair in halves for half in pair]
outcomes = classify(flat, reactants, cyclohexene, time_step_fs=1.0)  # a frame every 1 fs
outcomes.write(flat, workdir / "outcomes")
ends_per_trajectory = [
    tuple(sorted(outcomes.labels[2 * k : 2 * k + 2])) for k in range(len(halves))
]
direct = sum(e == ("product", "reactant") for e in ends_per_trajectory)
fraction = direct / len(halves)
error = math.sqrt(fraction * (1 - fraction) / len(halves))
gaps = outcomes.asynchronicity()
print(
    f"{len(halves)} trajectories: {direct} direct (reactants <-> cyclohexene), "
    f"{100 * fraction:.0f} ± {100 * error:.0f} %; ends: {dict(outcomes.fractions)}"
)
if gaps:
    print(f"time between the two C-C bond formations: {np.mean(gaps):.1f} ± {np.std(gaps):.1f} fs")
summary = {
    "barrier_kcal_mol": barrier,
    "reaction_energy_kcal_mol": reaction,
    "imaginary_frequency_cm1": saddle.info["imaginary_frequency"],
    "n_trajectories": len(halves),
    "direct_fraction": fraction,
    "direct_fraction_error": error,
    "end_fractions": outcomes.fractions,
    "bond_formation_gaps_fs": gaps,
}
(workdir / "summary.json").write_text(json.dumps(summary, indent=1))

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.hist(gaps or [0.0], bins=10, color="tab:blue")
ax.set_xlabel("time between the two C-C bond formations / fs")
ax.set_ylabel("trajectories")
ax.set_title("Diels-Alder, GFN2-xTB, from the transition state")
fig.tight_layout()
fig.savefig(workdir / "bond_times.png", dpi=120)
print(f"wrote {workdir / 'summary.json'}, {workdir / 'bond_times.png'}, {workdir / 'outcomes'}")
