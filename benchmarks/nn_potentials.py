"""ANI, MACE and KREG of ase-al side by side on the ethanol GFN2-xTB data set (CPU).

    python benchmarks/nn_potentials.py [--n-train 1000] [--models ANI MACE KREG]
                                       [--ani-epochs 200] [--mace-epochs 60] [--threads 2]
                                       [--peer-python PATH]

Same split for every model (as the KREG benchmark): a permutation (seed 0) of frames 1-3000;
the first N train, positions 2000-2999 are the test set (1000 structures). The networks
train on energies and forces with their own 10 % validation split, early stopping and the
plateau schedule, up to the epoch cap; "to convergence" is the whole training run (stopped
early or at the cap). Inference: one structure (mean over 50 calls of the ASE calculator
interface, energy + forces) and a batch of 100 structures through ``predict``.

When MLatom 3.25.5 with torchani runs in the peer environment (``../peer-venv`` or
$MLATOM_PYTHON), its ANI is trained on the same split with the same epoch cap and the
time and error ratios are printed.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase.io import read

from ase_al.calculators import ANI, KREG, MACE

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "ethanol_gfn2.extxyz"
KCAL = 23.060548  # kcal/mol per eV


def measure(name, model, train, test, forces=True):
    start = time.perf_counter()
    if isinstance(model, KREG):
        model.train(train, forces=False, progress=False)
    else:
        model.train(train, forces=forces, progress=False)
    train_s = time.perf_counter() - start
    epochs = len(model.history) if hasattr(model, "history") else None

    atoms = test[0].copy()
    atoms.calc = model
    atoms.get_forces()  # warm-up
    start = time.perf_counter()
    for k in range(50):
        atoms.positions[0, 0] += 1e-4 * (-1) ** k
        atoms.get_forces()
    single_ms = (time.perf_counter() - start) / 50 * 1e3
    model.predict(test[:100])
    start = time.perf_counter()
    model.predict(test[:100])
    batch_ms = (time.perf_counter() - start) * 1e3

    result = model.predict(test)
    energies = np.array([a.get_potential_energy() for a in test])
    ref_forces = np.array([a.get_forces() for a in test])
    return {
        "model": name,
        "train_s": train_s,
        "epochs": epochs,
        "s_per_epoch": train_s / epochs if epochs else None,
        "single_ms": single_ms,
        "batch100_ms": batch_ms,
        "energy_rmse": float(np.sqrt(np.mean((result["energy"] - energies) ** 2))) * KCAL,
        "force_rmse": float(np.sqrt(np.mean((result["forces"] - ref_forces) ** 2))) * KCAL,
    }


def peer(python, n_train, epochs):
    out = subprocess.run(
        [python, str(HERE / "_mlatom_ani.py"), str(n_train), str(DATA), str(epochs)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--models", nargs="+", default=["ANI", "MACE", "KREG"])
    parser.add_argument("--ani-epochs", type=int, default=200)
    parser.add_argument("--mace-epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--peer-python",
        default=os.environ.get("MLATOM_PYTHON", str(HERE.parents[1] / "peer-venv/bin/python")),
    )
    args = parser.parse_args()

    frames = read(DATA, "1:")
    order = np.random.default_rng(0).permutation(len(frames))
    train = [frames[i] for i in order[: args.n_train]]
    test = [frames[i] for i in order[2000:3000]]
    factories = {
        "ANI": lambda: ANI(max_epochs=args.ani_epochs, threads=args.threads, device="cpu"),
        "MACE": lambda: MACE(max_epochs=args.mace_epochs, threads=args.threads, device="cpu"),
        "KREG": lambda: KREG(),
    }
    rows = []
    for name in args.models:
        rows.append(measure(name, factories[name](), train, test))
        print(json.dumps(rows[-1]), flush=True)

    print(
        f"\nethanol GFN2-xTB, N_train = {args.n_train}, 1000 test structures, CPU, "
        f"{args.threads} threads; errors in kcal/mol and kcal/mol/Å"
    )
    header = (
        f"{'model':6} {'train/s':>8} {'epochs':>6} {'s/epoch':>8} {'1 struct/ms':>11} "
        f"{'100 structs/ms':>14} {'E RMSE':>7} {'F RMSE':>7}"
    )
    print(header)
    for r in rows:
        epochs = "-" if r["epochs"] is None else str(r["epochs"])
        per = "-" if r["s_per_epoch"] is None else f"{r['s_per_epoch']:.2f}"
        print(
            f"{r['model']:6} {r['train_s']:8.1f} {epochs:>6} {per:>8} {r['single_ms']:11.2f} "
            f"{r['batch100_ms']:14.1f} {r['energy_rmse']:7.3f} {r['force_rmse']:7.3f}"
        )
    print("(KREG trained on energies only: its force RMSE is of forces it never saw)")

    if "ANI" in args.models and Path(args.peer_python).exists():
        theirs, why = peer(args.peer_python, args.n_train, args.ani_epochs)
        if theirs is None:
            print(f"\nMLatom ANI could not run in the peer environment: {why}")
            return
        ours = next(r for r in rows if r["model"] == "ANI")
        print(
            f"\nMLatom 3.25.5 ANI, same split, same epoch cap: train {theirs['train_s']:.1f} s "
            f"({theirs['epochs']} epochs), E RMSE {theirs['energy_rmse']:.3f}, "
            f"F RMSE {theirs['force_rmse']:.3f}"
        )
        print(
            f"ratio ase-al/MLatom: train time {ours['train_s'] / theirs['train_s']:.3f}, "
            f"time per epoch {ours['s_per_epoch'] / theirs['s_per_epoch']:.3f}, "
            f"E RMSE {ours['energy_rmse'] / theirs['energy_rmse']:.3f}, "
            f"F RMSE {ours['force_rmse'] / theirs['force_rmse']:.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
