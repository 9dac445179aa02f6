"""Ethene + 1,3-butadiene -> cyclohexene (Diels-Alder) with GFN2-xTB: the transition state, the
minima it connects, quasi-classical trajectories from the barrier top, classified; with a MODEL,
the same on an actively learned potential, side by side.

    python examples/diels_alder.py [WORKDIR] [N_TRAJECTORIES] [FS_EACH_WAY] [MODEL] [MAX_EPOCHS]
        [TARGET] [MAX_ITERATIONS]

1. Transition state by Sella from a guess (cyclohexene with the two new C-C bonds stretched),
   checked to have one imaginary mode; the descent both ways must give cyclohexene and
   ethene + butadiene.
2. N initial conditions by transition-state sampling at 300 K (real modes Wigner, the reaction
   coordinate with a thermal-flux momentum); each is run forward and, with all momenta
   reversed, backward, FS_EACH_WAY fs each (velocity Verlet, 0.5 fs), on both cores.
3. Each half's end is classified by the bonds (covalent radii) it holds over its last 20 fs
   (a hot product's bond caught stretched in one frame is still a bond): a *direct*
   trajectory joins reactants and product; for the product half, the time between the
   formation of the two new C-C bonds (each when it first comes within 1.6 Å) says how
   asynchronous the reaction is.
4. With MODEL (``ANI``, ``MACE``; MAX_EPOCHS for the networks): a potential is actively learned
   from the saddle point (transition-state sampling), cyclohexene and the ethene-butadiene
   complex (Wigner sampling, the modes below 100 cm-1 kept at their equilibrium positions),
   each also optimised on every iteration's model and its curvature along GFN2-xTB's modes
   checked (modes more than 5 % off labelled), its barrier top checked against GFN2-xTB's
   along the reaction coordinate (20 labelled transition-state samples per iteration at
   300 K and 20 at 600 K; within a tenth of the coordinate's thermal width), and ethene and
   butadiene 6 Å farther apart than in the complex (``info["separated"]``: each molecule
   sampled, their relative motion free) as starting structures, until its checks of
   certain structures meet TARGET (kcal/mol, default 1; ``Uncertainty(target_error=...)``)
   or MAX_ITERATIONS (default 20) have run,
   the networks continuing from the previous iteration's weights (``warm_start``). The model
   kept is the latest iteration's whose own stationary points held (each starting structure
   optimised on it within 1 kcal/mol of GFN2-xTB's energy change:
   ``ALRun.validated_iteration``); its own saddle point and reactants give the learned
   barrier (``ase_al.reactions.barrier``), and the same N initial conditions are propagated
   on it.

Writes WORKDIR/ts.traj, WORKDIR/<potential>/*.traj (each half; <MODEL>_iteration<k> for the
model of iteration k), WORKDIR/outcomes_<potential>/<class>.traj (ase gui),
WORKDIR/bond_times.png and WORKDIR/summary.json, and prints a table.
About two minutes on two cores with the defaults and no model; learning takes an hour or more.
Every stage is kept in WORKDIR, so a killed run resumes.
"""

import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.data import covalent_radii  # noqa: E402
from ase.io import read, write  # noqa: E402
from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

import ase_al  # noqa: E402
from ase_al.executors import default_executor  # noqa: E402
from ase_al.reactions import (  # noqa: E402
    classify,
    descend_from_saddle,
    find_transition_state,
    fragments,
    propagate_both_ways,
    species,
)
from ase_al.samplers import transition_state_sampling  # noqa: E402

workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "diels_alder")
n_trajectories = int(sys.argv[2]) if len(sys.argv) > 2 else 10
fs_each_way = float(sys.argv[3]) if len(sys.argv) > 3 else 100.0
model_name = sys.argv[4] if len(sys.argv) > 4 else None
max_epochs = int(sys.argv[5]) if len(sys.argv) > 5 else 300
target_kcal_mol = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
max_iterations = int(sys.argv[7]) if len(sys.argv) > 7 else ase_al.Selection().max_iterations
workdir.mkdir(parents=True, exist_ok=True)
calc = ase_al.methods("GFN2-xTB")
kcal_mol = units.kcal / units.mol
if model_name is not None:  # an unknown model name fails here, in one line, before any work
    try:
        cls = ase_al.calculators.model_class(model_name)
    except ValueError as err:
        sys.exit(f"{Path(__file__).name}: {err}")

if not (workdir / "stationary.traj").exists():
    # cyclohexene C1=CCCCC1: C0=C1 is butadiene's central bond, C3-C4 the ethene; C2-C3 and
    # C4-C5 are the bonds the reaction forms
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
    saddle, vibrations = find_transition_state(guess, calc)
    backward, forward = descend_from_saddle(saddle, vibrations, calc, steps=400)
    ends = {tuple(species(backward)): backward, tuple(species(forward)): forward}
    assert set(ends) == {("C6H10",), ("C2H4", "C4H6")}, f"the saddle connects {list(ends)}"
    # the reactant complex is floppy: its six intermolecular modes (15-92 cm-1) are only all
    # real when it is optimised to 1e-4 eV/Å
    complex_ = ase_al.optimize_geometry(
        ends[("C2H4", "C4H6")], calc, fmax=1e-4, steps=5000, optimizer="LBFGS"
    )
    stationary = [saddle, complex_, ends[("C6H10",)]]
    for atoms in stationary:
        atoms.info["reference_energy"] = atoms.get_potential_energy()  # eV
    write(workdir / "stationary.traj", stationary)
    write(workdir / "ts.traj", saddle)
    vibrations.write(workdir / "ts_vibrations.json")
saddle, reactants, cyclohexene = read(workdir / "stationary.traj", ":")
saddle.info["transition_state"] = True
vibrations = ase_al.HarmonicAnalysis.read(workdir / "ts_vibrations.json")
imaginary = float(vibrations.frequencies.min())
e_saddle, e_reactants, e_product = (
    a.info["reference_energy"] for a in (saddle, reactants, cyclohexene)
)
barrier = (e_saddle - e_reactants) / kcal_mol
reaction = (e_product - e_reactants) / kcal_mol
print(
    f"transition state: C-C {saddle.get_distance(2, 3):.3f} and {saddle.get_distance(4, 5):.3f} Å, "
    f"{imaginary:.0f} cm-1 (imaginary)"
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

# the initial conditions: from the barrier top, the same for every potential
samples = transition_state_sampling(saddle, vibrations, n_trajectories, 300.0, seed=0)


def trajectories(name, potential, executor):
    """Both halves of every trajectory on ``potential`` in WORKDIR/name (resumed in chunks of
    ten); returns the halves in pairs (forward, backward) and the wall time of this call."""
    folder = workdir / name
    folder.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for first in range(0, n_trajectories, 10):
        chunk = range(first, min(first + 10, n_trajectories))
        if all((folder / f"{k:03d}_backward.traj").exists() for k in chunk):
            continue
        pairs = propagate_both_ways(
            [samples[k] for k in chunk], potential, fs_each_way, 0.5, 2, executor=executor
        )
        for k, (forward, backward) in zip(chunk, pairs, strict=True):
            write(folder / f"{k:03d}_forward.traj", forward)
            write(folder / f"{k:03d}_backward.traj", backward)
    wall = time.perf_counter() - t0
    halves = [
        read(folder / f"{k:03d}_{way}.traj", ":")
        for k in range(n_trajectories)
        for way in ("forward", "backward")
    ]
    return halves, wall


def analyse(name, halves, wall):
    # a frame every 1 fs; the end is the bonds held over the last 20 fs: cyclohexene formed
    # with 64 kcal/mol to spare stretches a C-C or C-H bond past the cutoff now and then, and
    # by its last frame alone 17 of GFN2-xTB's 200 halves were "other" that are cyclohexene.
    # A new C-C bond is timed when it first comes within 1.6 Å (C's covalent radius: 0.76 Å)
    outcomes = classify(
        halves,
        reactants,
        cyclohexene,
        time_step_fs=1.0,
        end_fs=20.0,
        bond_time_scale=1.6 / (2 * covalent_radii[6]),
    )
    outcomes.write(halves, workdir / f"outcomes_{name}")
    return {**outcomes.summary(), "wall_s_this_call": wall}


results = {"GFN2-xTB": analyse("GFN2-xTB", *trajectories("GFN2-xTB", calc, default_executor()))}
summary = {
    "barrier_kcal_mol": barrier,
    "reaction_energy_kcal_mol": reaction,
    "imaginary_frequency_cm1": imaginary,
    "n_trajectories": n_trajectories,
    "fs_each_way": fs_each_way,
}

if model_name is not None:
    t0 = time.perf_counter()
    networks = model_name.upper() != "KREG"  # ANI, MACE: max_epochs, continued each iteration
    # the separated reactants, the asymptote every backward half runs to: without them the
    # networks put ethene and butadiene pulled apart 9-13 kcal/mol too low (GFN2-xTB: 1.8
    # kcal/mol above the complex), so that the complex was not bound on the learned surface
    apart = reactants.copy()
    apart.info.clear()
    ethene = next(part for part in fragments(apart) if len(part) == 6)
    axis = apart.positions[ethene].mean(axis=0) - np.delete(apart.positions, ethene, 0).mean(axis=0)
    apart.positions[ethene] += 6.0 * axis / np.linalg.norm(axis)
    apart.info["separated"] = True
    pair = ase_al.ActiveLearner(
        [cyclohexene.copy(), saddle.copy(), reactants.copy(), apart],
        "GFN2-xTB",
        model=cls(max_epochs=max_epochs) if networks else cls(),
        workdir=workdir / "al",
        # the complex's intermolecular modes keep their positions in the Wigner samples
        # (displaced harmonically they tear the molecules apart) and get thermal momenta
        # and the three are optimised on every iteration's model (the saddle point by Sella),
        # the first uncertain structure of each path labelled: on the flat surface around the
        # complex, an optimisation on the learned potential found wells GFN2-xTB does not have;
        # and the model's curvature along GFN2-xTB's modes at each structure, from which the
        # initial conditions are drawn, is checked: a mode more than 5 % off is labelled
        # both ways along it (at the saddle point the asynchronous mode sets how far apart
        # the two bonds form); and where its barrier top lies along GFN2-xTB's reaction
        # coordinate, from 20 labelled transition-state samples per iteration: moved by a
        # tenth of the coordinate's thermal width (0.008 Å), it shifts the direct fraction
        # by about 4 in 100
        sampling=ase_al.Sampling(
            options={"max_time_fs": fs_each_way},
            freeze_below_cm1=100.0,
            relax_starting_points=True,
            frequency_tolerance=0.05,
            barrier_top_tolerance=0.1,
            # the top checked with hotter transverse modes too: slow trajectories linger
            # there with more energy in them than the thermal samples hold
            barrier_top_temperatures=(300.0, 600.0),
        ),
        uncertainty=ase_al.Uncertainty(target_error=target_kcal_mol * kcal_mol),
        selection=ase_al.Selection(max_iterations=max_iterations),
        warm_start=networks,
    ).run()
    run = ase_al.ALRun(workdir / "al")
    # the model kept: the latest iteration whose own stationary points held against GFN2-xTB
    # (each starting structure optimised on it, labelled after it was trained, its energy
    # change within 1 kcal/mol of GFN2-xTB's): a later iteration can open a spurious well of
    # the floppy complex that an earlier one had closed (ALRun.validated_iteration)
    last = len(run.history)
    kept = run.validated_iteration(1.0 * kcal_mol)
    if kept is None:
        print(f"{model_name}: no iteration's stationary points held within 1 kcal/mol: the last")
        kept = last
    elif kept != last:
        print(
            f"{model_name}: iteration {kept} of {last} is the latest whose stationary points "
            "held within 1 kcal/mol of GFN2-xTB's: its model is used"
        )
    main = (pair if kept == last else run.model(kept)).members[0]
    # its own saddle point (Sella from GFN2-xTB's) and its own reactant minimum (from
    # GFN2-xTB's complex); a stationary point that is not first order is reported, not hidden
    learned = ase_al.reactions.barrier(main, saddle, reactants)
    if learned.problem:
        print(f"{model_name}: {learned.problem}; its barrier is taken at that stationary point")
    # the complex is bound by 1.8 kcal/mol (GFN2-xTB) on a flat surface: an optimisation on a
    # potential that has not learned it can wander out of it, into a region it never saw
    if learned.species != ["C2H4", "C4H6"]:
        print(
            f"{model_name}: optimising the reactant complex ended in {learned.species}, not "
            "ethene + butadiene: the learned potential has a spurious minimum there"
        )
    # the learned energies at GFN2-xTB's own saddle point and complex, for comparison
    at_reference = main.predict([saddle, reactants], forces=False)["energy"]
    summary["learning"] = {
        "model": model_name,
        "target_error_kcal_mol": target_kcal_mol,
        "labels": len(run.labelled()),
        "iterations": last,
        "model_of_iteration": kept,
        "labels_before_it": run.history[kept - 1]["n_train"],
        "converged": run.converged,
        "wall_s_this_call": time.perf_counter() - t0,
        "barrier_kcal_mol": learned.energy / kcal_mol,
        "reactant_optimisation_ends_in": learned.species,
        "barrier_at_reference_geometries_kcal_mol": float(at_reference[0] - at_reference[1])
        / kcal_mol,
        "imaginary_frequencies_cm1": learned.imaginary_cm1,  # one for a first-order saddle
    }
    # one folder per model (a resumed, longer run may keep another iteration's)
    name = f"{model_name}_iteration{kept}"
    results[model_name] = analyse(name, *trajectories(name, main, None))
summary["trajectories"] = results

print(f"\n{n_trajectories} trajectories from the barrier top, {fs_each_way:g} fs each way")
print(
    f"{'potential':>10s} {'direct / %':>12s} {'C-C bond gap / fs':>18s} {'barrier':>8s} {'s':>6s}"
)
for name, r in results.items():
    gap = (
        "-"
        if r["gap_mean_fs"] is None
        else f"{r['gap_mean_fs']:.1f} ± {r['gap_error_fs'] or 0:.1f}"
    )
    b = barrier if name == "GFN2-xTB" else summary["learning"]["barrier_kcal_mol"]
    print(
        f"{name:>10s} {100 * r['direct_fraction']:6.0f} ± {100 * r['direct_fraction_error']:3.0f} "
        f"{gap:>18s} {b:8.1f} {r['wall_s_this_call']:6.0f}"
    )
if model_name is not None:
    learning = summary["learning"]
    print(
        f"the model of iteration {learning['model_of_iteration']} of {learning['iterations']}, "
        f"trained on {learning['labels_before_it']} GFN2-xTB labels "
        f"({learning['labels']} labelled in all)"
    )
(workdir / "summary.json").write_text(json.dumps(summary, indent=1))

fig, ax = plt.subplots(figsize=(5, 3.2))
for name, r in results.items():
    ax.hist(r["bond_formation_gaps_fs"] or [0.0], bins=10, alpha=0.6, label=name)
ax.set_xlabel("time between the two C-C bond formations / fs")
ax.set_ylabel("trajectories")
ax.set_title("Diels-Alder from the transition state")
ax.legend()
fig.tight_layout()
fig.savefig(workdir / "bond_times.png", dpi=120)
print(f"wrote {workdir / 'summary.json'}, {workdir / 'bond_times.png'}, {workdir}/outcomes_*")
