"""Active learning of a KREG potential for ethanol with GFN2-xTB: ase-al vs MLatom's ml.al.

    python benchmarks/al_vs_mlatom.py [--trajectories 100] [--time 250] [--max-iterations 10]

Both codes start from the same geometry (frame 0 of ../shared/data/ethanol_gfn2.extxyz), run
the physics-informed scheme (main KREG on energies + forces, auxiliary KREG on energies only,
threshold median + 3 MAD) with batched MD sampling from 300 K Wigner initial conditions,
the same number of trajectories, propagation time, time step, new_points and min_new_points,
each with its own initial-data procedure and hyperparameter search. Labelling uses the two
cores in both (ase-al: a process pool; MLatom: its joblib workers).

The test set is independent of both runs: 200 snapshots of ten 200 fs GFN2-xTB (tblite) NVE
trajectories from 300 K Wigner initial conditions. Printed per code: wall time (optimisation
and frequencies included), reference labels, iterations, and the final main model's energy
RMSE (up to a constant: MLatom's reference is its bundled xtb program, ours tblite) and force
RMSE on the test set, then the ratios ase-al / MLatom.

The peer runs in ../peer-venv (see ../shared/peer/README.md) with MLatom's default AL KREG
backend, KREG_API, which links MKL, and MLatom's al module imports torch even for KREG:
`peer-venv/bin/pip install mkl mkl-service torch==2.13.0 'setuptools<81'`; this script points
LD_LIBRARY_PATH at unversioned names of the MKL libraries. --no-peer skips the peer. MLatom's
side takes hours at the default settings (its first iteration alone: ~33 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from ase.md.verlet import VelocityVerlet

import ase_al
from ase_al import ActiveLearner
from ase_al.samplers import wigner

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "ethanol_gfn2.extxyz"


def md_test_set(equilibrium, n_trajectories=10, steps=400, every=20, seed=2024):
    """GFN2-xTB NVE snapshots (energies, forces) from 300 K Wigner initial conditions."""
    calc = ase_al.methods("GFN2-xTB")
    vibrations = ase_al.freq(equilibrium, calc)
    frames = []
    for atoms in wigner(equilibrium, vibrations, n_trajectories, 300.0, seed=seed):
        atoms.calc = calc
        dyn = VelocityVerlet(atoms, 0.5 * units.fs)
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
    predicted = model.predict(test)
    error = predicted["energies"] - np.array([a.get_potential_energy() for a in test])
    forces = np.array([a.get_forces() for a in test])
    return (
        float(np.sqrt(np.mean((error - error.mean()) ** 2))),
        float(np.sqrt(np.mean((predicted["forces"] - forces) ** 2))),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--time", type=float, default=250.0, help="fs per trajectory")
    parser.add_argument("--step", type=float, default=0.5, help="fs")
    parser.add_argument("--max-iterations", type=int, default=10)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument(
        "--peer-python",
        default=os.environ.get(
            "MLATOM_PYTHON", str(HERE.parents[1] / "peer-venv" / "bin" / "python")
        ),
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="al_vs_mlatom_"))
    start = read(DATA, 0)
    start.calc = None
    write(work / "start.xyz", start)
    test = md_test_set(start)
    write(work / "test.extxyz", test)
    print(f"test set: {len(test)} GFN2-xTB MD snapshots; work in {work}", flush=True)

    started = time.perf_counter()
    learner = ActiveLearner(
        start,
        "GFN2-xTB",
        model="KREG",
        workdir=work / "ase_al",
        sampler="batch_md",
        sampler_kwargs={
            "n_trajectories": args.trajectories,
            "maximum_propagation_time": args.time,
            "time_step": args.step,
        },
        new_points=args.trajectories,
        min_new_points=5,
        max_iterations=args.max_iterations,
        seed=0,
        progress=False,
    )
    model = learner.run()
    wall = time.perf_counter() - started
    state = learner._state()
    e_rmse, f_rmse = errors(model, test)
    ours = {
        "wall_s": wall,
        "labels": len(learner.labelled()),
        "iterations": len(state["iterations"]),
        "converged": bool(state.get("converged")),
        "energy_rmse": e_rmse,
        "force_rmse": f_rmse,
    }
    rows = {"ase-al": ours}
    if not args.no_peer and Path(args.peer_python).exists():
        env = dict(os.environ, LD_LIBRARY_PATH=mkl_library_path(Path(args.peer_python)))
        out = subprocess.run(
            [
                args.peer_python,
                str(HERE / "_mlatom_al.py"),
                str(work / "start.xyz"),
                str(work / "test.extxyz"),
                str(work / "mlatom"),
                str(args.trajectories),
                str(args.time),
                str(args.step),
                str(args.max_iterations),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=HERE,
        )
        (work / "mlatom.log").write_text(out.stdout + out.stderr)
        if out.returncode:
            print(f"MLatom run failed (log: {work / 'mlatom.log'}):\n{out.stderr[-2000:]}")
        else:
            rows["MLatom"] = json.loads(out.stdout.strip().splitlines()[-1])

    kcal = units.mol / units.kcal
    print(
        f"\nethanol, GFN2-xTB, KREG; {args.trajectories} trajectories x {args.time:g} fs, "
        f"{args.step:g} fs steps, max {args.max_iterations} iterations"
    )
    print(
        f"{'code':8s} {'wall/s':>8s} {'labels':>7s} {'iter':>5s} {'conv':>5s} "
        f"{'E RMSE/(kcal/mol)':>18s} {'F RMSE/(kcal/mol/Å)':>20s}"
    )
    for name, r in rows.items():
        print(
            f"{name:8s} {r['wall_s']:8.1f} {r['labels']:7d} {r['iterations']:5d} "
            f"{str(r['converged']):>5s} {r['energy_rmse'] * kcal:18.3f} "
            f"{r['force_rmse'] * kcal:20.3f}"
        )
    if "MLatom" in rows:
        peer = rows["MLatom"]
        print(
            "ratios ase-al / MLatom (target: labels <= 1, errors < 1, time <= 0.5): "
            f"labels {ours['labels'] / peer['labels']:.3f}, "
            f"E RMSE {ours['energy_rmse'] / peer['energy_rmse']:.3f}, "
            f"F RMSE {ours['force_rmse'] / peer['force_rmse']:.3f}, "
            f"time {ours['wall_s'] / peer['wall_s']:.3f}"
        )


if __name__ == "__main__":
    main()
