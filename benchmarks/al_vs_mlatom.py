"""Active learning of a KREG potential for ethanol with GFN2-xTB: ase-al vs MLatom's ml.al.

    python benchmarks/al_vs_mlatom.py [--trajectories 100] [--time 250] [--max-iterations 10]
        [--workdir DIR] [--side both|ase-al|mlatom] [--uq-threshold EV] [--init-points N]

Both codes start from the same geometry (frame 0 of ../shared/data/ethanol_gfn2.extxyz), run
the physics-informed scheme (main KREG on energies + forces, auxiliary KREG on energies only,
threshold median + 3 MAD on each code's validation set, or one fixed value given with
``--uq-threshold`` for both) with batched MD sampling from 300 K Wigner initial conditions,
the same number of trajectories, propagation time, time step, new_points and min_new_points,
each with its own initial-data procedure (the learning-curve rule: add 50 Wigner points until
another 50 would improve the fitted cross-validation error by less than 10 %; or, with
``--init-points N``, N points in one batch for both) and hyperparameter search. Labelling
uses the two cores in both (ase-al: a process pool; MLatom: its joblib workers).

The test sets are independent of both runs: 200 snapshots of ten 200 fs GFN2-xTB (tblite) NVE
trajectories from 300 K Wigner initial conditions (``test.extxyz``); and, when the propagation
time is shorter than 200 fs, 200 snapshots of forty trajectories that last the propagation time
(``test_<T>fs.extxyz``, five equally spaced snapshots each, other initial conditions): the
region that active learning promises to cover, while the 200 fs set also asks the models to
extrapolate beyond it. Printed per code: wall time (optimisation and frequencies included),
reference labels, iterations, and the final main model's energy RMSE (up to a constant:
MLatom's reference is its bundled xtb program, ours tblite) and force RMSE on each test set,
then the ratios ase-al / MLatom. Errors are computed from the saved final models
(``--side none`` computes any that are missing, e.g. for a new test set, and prints the table).
``--cross-fit`` adds a row ``fit(ML)``: ase-al's KREG fitted, as the learner fits its main
model, to the training set of MLatom's final model, so that the fit and the sampling can be
told apart (same labels, the other code's fit).

The peer runs in ../peer-venv (see ../shared/peer/README.md) with MLatom's default AL KREG
backend, KREG_API, which links MKL, and MLatom's al module imports torch even for KREG:
`peer-venv/bin/pip install mkl mkl-service torch==2.13.0 'setuptools<81'`; this script points
LD_LIBRARY_PATH at unversioned names of the MKL libraries. MLatom's side takes hours at the
default settings (its first iteration alone: ~33 min on 2 cores).

The two sides can run one after the other (``--side``, the same ``--workdir``: the start
geometry and test set are made once and reused), so that neither is timed while the other
competes for the cores. Each side writes its figures to ``WORKDIR/<side>.json``; re-running a
side that was killed resumes it (both codes restart from their saved state; the wall time of
all attempts is summed). The table and the ratios are printed from whatever figures exist.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from _results import write_result
from _stopwatch import stopwatch
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from ase.md.verlet import VelocityVerlet
from ase.units import Hartree

import ase_al
from ase_al import ActiveLearner, ALRun, InitialData, Sampling, Selection, Uncertainty
from ase_al.samplers import wigner

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "ethanol_gfn2.extxyz"


def md_test_set(equilibrium, n_trajectories=10, steps=400, every=20, seed=2024, step=0.5):
    """GFN2-xTB NVE snapshots (energies, forces) from 300 K Wigner initial conditions: every
    ``every``-th of ``steps`` steps of ``step`` fs, the initial geometry not included."""
    calc = ase_al.methods("GFN2-xTB")
    vibrations = ase_al.freq(equilibrium, calc)
    frames = []
    for atoms in wigner(equilibrium, vibrations, n_trajectories, 300.0, seed=seed):
        atoms.calc = calc
        dyn = VelocityVerlet(atoms, step * units.fs)
        for _ in range(steps // every):
            dyn.run(every)
            snapshot = atoms.copy()
            snapshot.calc = SinglePointCalculator(
                snapshot, energy=atoms.get_potential_energy(), forces=atoms.get_forces()
            )
            frames.append(snapshot)
    return frames


def mkl_library_path(peer_python: Path) -> str:
    """A folder of unversioned MKL names (what MLatom's KREG.so asks for) in the peer venv."""
    lib = peer_python.parents[1] / "lib"
    links = Path(tempfile.mkdtemp(prefix="mkl_links_"))
    for name in ("intel_lp64", "intel_thread", "core"):
        found = sorted(lib.glob(f"libmkl_{name}.so.*"))
        if found:
            (links / f"libmkl_{name}.so").symlink_to(found[-1])
    return f"{links}:{lib}"


def errors(model, test):
    """Energy RMSE up to a constant (the mean error, ``energy_offset``), force RMSE; eV, eV/Å."""
    predicted = model.predict(test)
    error = predicted["energy"] - np.array([a.get_potential_energy() for a in test])
    forces = np.array([a.get_forces() for a in test])
    return {
        "energy_rmse": float(np.sqrt(np.mean((error - error.mean()) ** 2))),
        "energy_offset": float(error.mean()),
        "force_rmse": float(np.sqrt(np.mean((predicted["forces"] - forces) ** 2))),
    }


def write_start(work: Path) -> None:
    """``work/start.xyz``: frame 0 of the ethanol data set, the start of every run (once)."""
    if not (work / "start.xyz").exists():
        start = read(DATA, 0)
        start.calc = None
        write(work / "start.xyz", start)


def test_sets(args, work: Path) -> dict[str, str]:
    """File name -> label of the test sets, made (once per work folder) where missing."""
    start = read(work / "start.xyz")
    sets = {"test.extxyz": "MD 200 fs"}
    if not (work / "test.extxyz").exists():
        write(work / "test.extxyz", md_test_set(start))
    if args.time < 200.0:
        name = f"test_{args.time:g}fs.extxyz"
        sets[name] = f"MD {args.time:g} fs"
        if not (work / name).exists():
            steps = max(5, round(args.time / args.step))
            frames = md_test_set(
                start, n_trajectories=40, steps=steps, every=steps // 5, seed=2025, step=args.step
            )
            write(work / name, frames)
    return sets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--time", type=float, default=250.0, help="fs per trajectory")
    parser.add_argument("--step", type=float, default=0.5, help="fs")
    parser.add_argument("--max-iterations", type=int, default=10)
    parser.add_argument(
        "--uq-threshold",
        type=float,
        help="eV, the same fixed uncertainty threshold for both codes (default: each sets "
        "its own, median + 3 MAD on its validation set)",
    )
    parser.add_argument(
        "--init-points",
        type=int,
        help="initial Wigner points, one batch, for both codes (default: each code's "
        "learning-curve rule)",
    )
    parser.add_argument("--no-peer", action="store_true", help="same as --side ase-al")
    parser.add_argument(
        "--side",
        choices=("both", "ase-al", "mlatom", "none"),
        default="both",
        help="which code to run (none: only evaluate finished runs on the test sets and report)",
    )
    parser.add_argument("--seed", type=int, default=0, help="ase-al's seed (Wigner conditions)")
    parser.add_argument(
        "--fill-new-points",
        action="store_true",
        help="ase-al samples on within an iteration until it has new_points uncertain "
        "structures, as MLatom does (default: one batch of trajectories per iteration)",
    )
    parser.add_argument(
        "--farthest",
        action="store_true",
        help="with --fill-new-points: pool twice new_points uncertain structures and label the "
        "new_points farthest from the labelled data (selection='farthest', pool_factor=2)",
    )
    parser.add_argument(
        "--cross-fit",
        action="store_true",
        help="also fit ase-al's KREG (the learner's main-model fit) to MLatom's final training "
        "set and score it on the test sets: the same labels, the other code's fit",
    )
    parser.add_argument("--workdir", help="shared folder (default: a new temporary one)")
    parser.add_argument(
        "--peer-python",
        default=os.environ.get(
            "MLATOM_PYTHON", str(HERE.parents[1] / "peer-venv" / "bin" / "python")
        ),
    )
    args = parser.parse_args()
    side = "ase-al" if args.no_peer else args.side
    work = Path(args.workdir or tempfile.mkdtemp(prefix="al_vs_mlatom_"))
    work.mkdir(parents=True, exist_ok=True)
    write_start(work)
    tests = test_sets(args, work)
    print(f"test sets: {', '.join(tests.values())} (GFN2-xTB); work in {work}", flush=True)
    if side in ("both", "ase-al"):
        run_ours(args, work, read(work / "start.xyz"))
    if side in ("both", "mlatom") and Path(args.peer_python).exists():
        run_peer(args, work)
    evaluate(args, work, tests)
    if args.cross_fit:
        cross_fit(args, work, tests)
    report(args, work, tests)


def run_ours(args, work, start):
    elapsed = stopwatch(work / "ase_al_wall.json")
    learner = ActiveLearner(
        start,
        "GFN2-xTB",
        model="KREG",
        workdir=work / "ase_al",
        initial_data=(
            InitialData(batch=args.init_points, max_points=args.init_points)
            if args.init_points
            else None
        ),
        sampling=Sampling(
            sampler="batch_md",
            n_trajectories=args.trajectories,
            options={"max_time_fs": args.time, "time_step_fs": args.step},
        ),
        selection=Selection(
            new_points=args.trajectories,
            min_new_points=5,
            fill=args.fill_new_points,
            max_iterations=args.max_iterations,
            **({"method": "farthest", "pool_factor": 2.0} if args.farthest else {}),
        ),
        uncertainty=Uncertainty(threshold=args.uq_threshold),
        seed=args.seed,
        progress=False,
    )
    learner.run()
    wall = elapsed()
    run = ALRun(work / "ase_al")
    ours = {
        "wall_s": wall,
        "labels": len(run.labelled()),
        "iterations": len(run.history),
        "converged": run.converged,
    }
    (work / "ase-al.json").write_text(json.dumps(ours))


def run_peer(args, work):
    env = dict(os.environ, LD_LIBRARY_PATH=mkl_library_path(Path(args.peer_python)))
    command = [
        args.peer_python,
        str(HERE / "_mlatom_al.py"),
        str(work / "start.xyz"),
        str(work / "mlatom"),
        str(args.trajectories),
        str(args.time),
        str(args.step),
        str(args.max_iterations),
        "none" if args.uq_threshold is None else str(args.uq_threshold / Hartree),
        str(args.init_points or 0),
    ]
    with open(work / "mlatom.log", "a") as log:  # streamed: its progress can be followed
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE)
    lines = (work / "mlatom.log").read_text().strip().splitlines()
    if code.returncode or not lines or not lines[-1].startswith("{"):
        print(f"MLatom run failed (log: {work / 'mlatom.log'}):\n" + "\n".join(lines[-20:]))
    else:
        (work / "mlatom.json").write_text(lines[-1])


def evaluate(args, work, tests):
    """Errors of each finished run's final main model on every test set, computed where not
    yet in its JSON file (eV, eV/Å) and saved there under ``errors``."""
    for file, final_model, evaluate_files in (
        ("ase-al.json", _our_final_model, _our_errors),
        ("mlatom.json", _peer_final_model, lambda m, f: _peer_errors(args, m, f)),
    ):
        if not (work / file).exists():
            continue
        figures = json.loads((work / file).read_text())
        done = figures.setdefault("errors", {})
        missing = [name for name in tests if name not in done]
        if missing:
            model = final_model(work)
            if model is None:
                print(f"{file}: no saved final model in {work}; errors on {missing} not known")
                continue
            done.update(evaluate_files(model, [work / name for name in missing]))
            (work / file).write_text(json.dumps(figures))


def _our_final_model(work):
    state = work / "ase_al" / "state.json"
    if not state.exists():
        return None
    k = len(json.loads(state.read_text())["iterations"])
    return work / "ase_al" / f"iteration_{k}" / "main.npz"


def _our_errors(model_file, paths):
    from ase_al.calculators import KREG

    model = KREG.load(model_file)
    return {path.name: errors(model, read(path, ":")) for path in paths}


def _peer_final_model(work):
    found = list((work / "mlatom" / "iterations").glob("*/mlmodel.npz"))
    return max(found, key=lambda path: int(path.parent.name)) if found else None


def _peer_errors(args, model_file, paths):
    env = dict(os.environ, LD_LIBRARY_PATH=mkl_library_path(Path(args.peer_python)))
    command = [args.peer_python, str(HERE / "_mlatom_errors.py"), str(model_file)]
    done = subprocess.run(
        command + [str(p) for p in paths], capture_output=True, text=True, env=env, cwd=HERE
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        raise RuntimeError(f"evaluating MLatom's model failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def cross_fit(args, work, tests):
    """ase-al's KREG fitted, as the learner fits its main model (energies + forces, its own
    σ, λ search), to the training set of MLatom's final model (MLatom's xtb labels), and
    scored on the test sets: beside MLatom's own model on the same labels, it tells the fit
    apart from the sampling. Figures in ``WORKDIR/cross_fit.json``, computed again only when
    MLatom's final model or the test sets have changed."""
    from ase_al.calculators import KREG

    final = _peer_final_model(work)
    if final is None:
        print(f"--cross-fit: no MLatom model in {work}")
        return
    out = work / "cross_fit.json"
    figures = json.loads(out.read_text()) if out.exists() else {}
    if figures.get("mlatom_model") == str(final.relative_to(work)) and all(
        name in figures.get("errors", {}) for name in tests
    ):
        return
    labels = work / "mlatom_training_set.extxyz"
    env = dict(os.environ, LD_LIBRARY_PATH=mkl_library_path(Path(args.peer_python)))
    done = subprocess.run(
        [args.peer_python, str(HERE / "_mlatom_labels.py"), str(final.parent), str(labels)],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
    )
    if done.returncode:
        raise RuntimeError(f"exporting MLatom's training set failed:\n{done.stderr[-2000:]}")
    images = read(labels, ":")
    # the learner's KREG takes the optimised geometry as its RE reference (fmax 1e-3 eV/Å)
    equilibrium = ase_al.optimize_geometry(read(work / "start.xyz"), ase_al.methods("GFN2-xTB"))
    equilibrium.calc = None
    model = KREG(equilibrium=equilibrium).train(images, forces=True)
    figures = {
        "labels": len(images),
        "mlatom_model": str(final.relative_to(work)),
        **model.hyperparameters,
        "errors": {path.name: errors(model, read(path, ":")) for path in (work / n for n in tests)},
    }
    out.write_text(json.dumps(figures))


def report(args, work, tests):
    rows = {}
    for name, file in (("ase-al", "ase-al.json"), ("MLatom", "mlatom.json")):
        if (work / file).exists():
            rows[name] = json.loads((work / file).read_text())
    kcal = units.mol / units.kcal
    print(
        f"\nethanol, GFN2-xTB, KREG; {args.trajectories} trajectories x {args.time:g} fs, "
        f"{args.step:g} fs steps, max {args.max_iterations} iterations"
        + (f", {args.init_points} initial points" if args.init_points else "")
        + (f", threshold {args.uq_threshold:g} eV" if args.uq_threshold else "")
    )
    print("errors: energy RMSE / (kcal/mol), force RMSE / (kcal/mol/Å) on each test set")
    header = f"{'code':8s} {'wall/s':>8s} {'labels':>7s} {'iter':>5s} {'conv':>5s}"
    print(header + "".join(f" {label:>16s}" for label in tests.values()))
    if (work / "cross_fit.json").exists():
        # the same labels as MLatom's final model, fitted by ase-al's KREG: no run of its own
        rows["fit(ML)"] = json.loads((work / "cross_fit.json").read_text())
    for name, r in rows.items():
        line = f"{name:8s} " + (
            f"{r['wall_s']:8.1f} {r['labels']:7d} {r['iterations']:5d} {str(r['converged']):>5s}"
            if "wall_s" in r
            else f"{'-':>8s} {r['labels']:7d} {'-':>5s} {'-':>5s}"
        )
        for test in tests:
            e = r.get("errors", {}).get(test)
            line += (
                f" {e['energy_rmse'] * kcal:7.3f} {e['force_rmse'] * kcal:8.3f}"
                if e
                else f" {'n/a':>16s}"
            )
        print(line)
    if "fit(ML)" in rows:
        print("fit(ML): ase-al's KREG fitted to the training set of MLatom's final model")
        if "MLatom" in rows:
            fit, peer = rows["fit(ML)"], rows["MLatom"]
            for test, label in tests.items():
                e_fit, e_peer = fit["errors"].get(test), peer.get("errors", {}).get(test)
                if e_fit and e_peer:
                    print(
                        f"  fit(ML) / MLatom, {label}: "
                        f"E RMSE {e_fit['energy_rmse'] / e_peer['energy_rmse']:.3f}, "
                        f"F RMSE {e_fit['force_rmse'] / e_peer['force_rmse']:.3f}"
                    )
    write_result(
        "al_vs_mlatom" + (f"_seed{args.seed}" if args.seed else ""),
        {
            "task": (
                f"ethanol, GFN2-xTB, KREG; {args.trajectories} trajectories x {args.time:g} fs, "
                f"{args.step:g} fs steps, max {args.max_iterations} iterations"
            ),
            "units": "wall s; RMSE in eV and eV/Å",
            "runs": rows,
            "test_sets": tests,
        },
        peer={"name": "MLatom", "version": "3.25.5", "measured": "MLatom" in rows},
    )
    if "ase-al" in rows and "MLatom" in rows:
        ours, peer = rows["ase-al"], rows["MLatom"]
        print(
            "ratios ase-al / MLatom (target: labels <= 1, errors < 1, time <= 0.5): "
            f"labels {ours['labels'] / peer['labels']:.3f}, "
            f"time {ours['wall_s'] / peer['wall_s']:.3f}"
        )
        for test, label in tests.items():
            e_ours, e_peer = ours.get("errors", {}).get(test), peer.get("errors", {}).get(test)
            if not (e_ours and e_peer):
                continue
            print(
                f"  {label}: E RMSE {e_ours['energy_rmse'] / e_peer['energy_rmse']:.3f}, "
                f"F RMSE {e_ours['force_rmse'] / e_peer['force_rmse']:.3f}"
            )


if __name__ == "__main__":
    main()
