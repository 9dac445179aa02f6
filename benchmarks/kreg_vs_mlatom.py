"""KREG of ase-al vs MLatom 3.25.5's KREG on the ethanol GFN2-xTB data set, in one run.

    python benchmarks/kreg_vs_mlatom.py [--sizes 500 1000 2000] [--peer-python PATH]

Same split for both: a permutation (seed 0) of frames 1-3000; the first N train (each code
with its own σ/λ search on its own 80/20 split, then a refit on all N), the permutation's
positions 2000-2999 are the fixed test set (1000 structures). Training time includes the
hyperparameter search; prediction is energies + forces for the 1000 test structures.
The peer runs in its own virtual environment (default: ../peer-venv/bin/python, or
$MLATOM_PYTHON), installed as described in the shared peer notes.
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

from ase_al.calculators import KREG

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "ethanol_gfn2.extxyz"
KCAL = 23.060548  # kcal/mol per eV


def ours(frames, order, n_train):
    train = [frames[i] for i in order[:n_train]]
    test = [frames[i] for i in order[2000:3000]]
    start = time.perf_counter()
    model = KREG().train(train, progress=False)
    trained = time.perf_counter()
    result = model.predict(test)
    predicted = time.perf_counter()
    energies = np.array([a.get_potential_energy() for a in test])
    forces = np.array([a.get_forces() for a in test])
    return {
        "train_s": trained - start,
        "predict_s": predicted - trained,
        "energy_rmse": float(np.sqrt(np.mean((result["energy"] - energies) ** 2))),
        "force_rmse": float(np.sqrt(np.mean((result["forces"] - forces) ** 2))),
        "sigma": model._model["sigma"],
        "lambda": model._model["lambda_"],
    }


def peer(python, n_train):
    out = subprocess.run(
        [python, str(HERE / "_mlatom_kreg.py"), str(n_train), str(DATA)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    default_peer = os.environ.get(
        "MLATOM_PYTHON", str(HERE.parents[1] / "peer-venv" / "bin" / "python")
    )
    parser.add_argument("--peer-python", default=default_peer)
    args = parser.parse_args()
    if not Path(args.peer_python).exists():
        sys.exit(
            f"MLatom's Python not found at {args.peer_python}: "
            "install the peer as in shared/peer/README.md"
        )
    frames = read(DATA, ":")[1:]
    order = np.random.default_rng(0).permutation(len(frames))
    header = (
        f"{'N':>5} {'code':>7} {'train+search/s':>14} {'predict 1000/s':>14} "
        f"{'E RMSE/(kcal/mol)':>17} {'F RMSE/(kcal/mol/Å)':>19} {'sigma':>7} {'lambda':>8}"
    )
    print(header)
    ratios, runs = [], []
    for n in args.sizes:
        rows = {"ase-al": ours(frames, order, n), "MLatom": peer(args.peer_python, n)}
        runs.append({"n_train": n, **rows})
        for code, r in rows.items():
            print(
                f"{n:5d} {code:>7} {r['train_s']:14.2f} {r['predict_s']:14.2f} "
                f"{r['energy_rmse'] * KCAL:17.3f} {r['force_rmse'] * KCAL:19.2f} "
                f"{r['sigma']:7.3g} {r['lambda']:8.1e}"
            )
        a, m = rows["ase-al"], rows["MLatom"]
        time_ratio = (a["train_s"] + a["predict_s"]) / (m["train_s"] + m["predict_s"])
        rmse_ratio = a["energy_rmse"] / m["energy_rmse"]
        ratios.append((n, time_ratio, rmse_ratio, a["force_rmse"] / m["force_rmse"]))
    print("\nratios ase-al / MLatom (target: time <= 0.33, energy RMSE <= 1)")
    for n, t, e, f in ratios:
        print(f"N={n:5d}: time {t:.3f}  energy RMSE {e:.3f}  force RMSE {f:.3f}")
    write_result(
        "kreg_vs_mlatom",
        {
            "units": "s; RMSE in eV and eV/Å",
            "runs": runs,
            "ratios": [
                {"n_train": n, "time": t, "energy_rmse": e, "force_rmse": f}
                for n, t, e, f in ratios
            ],
        },
        peer={"name": "MLatom", "version": "3.25.5", "python": args.peer_python},
    )


if __name__ == "__main__":
    main()
