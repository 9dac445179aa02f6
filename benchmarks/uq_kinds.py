"""The learner's kinds of uncertainty side by side on the ethanol GFN2-xTB task.

    python benchmarks/uq_kinds.py [--kinds physics-informed,committee,variance,distance]
        [--seeds 0,1,2,3,4] [--trajectories 100] [--time 25] [--max-iterations 10]
        [--target-error EV] [--min-checks N] [--init-points N] [--workdir DIR] [--name NAME]

The task of ``al_vs_mlatom.py`` (ethanol from frame 0 of ../shared/data/ethanol_gfn2.extxyz,
KREG, batch MD from 300 K Wigner conditions, the automatic threshold; the learner's own
initial-data rule, or with ``--init-points N`` N Wigner points in one batch, as
``al_vs_mlatom.py`` takes them), run once per uncertainty kind and seed. Per run: reference
labels (checks included), wall time, the final main model's energy RMSE (up to a constant)
and force RMSE on the two MD test sets of ``al_vs_mlatom.py`` (25 fs: the region sampled;
200 fs: beyond it), the calibration on held-out MD snapshots (Spearman rank correlation of
the final model's uncertainty with its true energy error on the 25 fs set), and the last
iteration's overconfidence checks. Test sets are made once per work folder; every run
resumes when killed. Results: ``benchmarks/results/uq_kinds.json`` (mean and standard error
over seeds per kind); with ``--target-error`` (give it its own ``--workdir``)
``benchmarks/results/uq_target_error.json``, which also counts the runs that stopped with the
checks meeting the target and the runs whose final model's energy RMSE on each held-out MD set
is within it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _results import write_result
from al_vs_mlatom import errors, test_sets, write_start
from ase.io import read
from scipy.stats import spearmanr

from ase_al import ActiveLearner, ALRun, InitialData, Sampling, Selection, Uncertainty


def run_one(args, work: Path, kind: str, seed: int, tests: dict) -> dict:
    folder = work / f"{kind}_s{seed}"
    result_file = folder / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    start = read(work / "start.xyz")
    t0 = time.perf_counter()
    model = ActiveLearner(
        start,
        "GFN2-xTB",
        model="KREG",
        workdir=folder,
        initial_data=(
            InitialData(batch=args.init_points, max_points=args.init_points)
            if args.init_points
            else None
        ),
        sampling=Sampling(
            n_trajectories=args.trajectories,
            options={"max_time_fs": args.time, "time_step_fs": 0.5},
        ),
        selection=Selection(new_points=args.trajectories, max_iterations=args.max_iterations),
        uncertainty=Uncertainty(
            kind=kind,
            target_error=args.target_error,
            **({"min_checks": args.min_checks} if args.min_checks else {}),
        ),
        seed=seed,
        progress=False,
    ).run()
    wall = time.perf_counter() - t0
    run = ALRun(folder)
    main = model.members[0]
    out = {
        "kind": kind,
        "seed": seed,
        "wall_s": wall,
        "labels": len(run.labelled()),
        "initial_points": len(run.labelled(iteration=0)),
        "iterations": len(run.history),
        "converged": run.converged,
        "threshold": run.history[-1]["threshold"],
        "errors": {name: errors(main, read(work / name, ":")) for name in tests},
    }
    # held-out snapshots of the sampled region (the 200 fs set when the trajectories are that long)
    held = read(work / next((n for n in tests if n != "test.extxyz"), "test.extxyz"), ":")
    predicted = model.predict(held, forces=False)
    true = np.abs(predicted["energy"] - np.array([a.get_potential_energy() for a in held]))
    out["spearman_heldout"] = float(spearmanr(predicted["energy_uncertainty"], true).statistic)
    last = run.history[-1]
    out["checks"] = {
        k: last.get(k)
        for k in (
            "n_checks",
            "check_rmse",
            "over_target",
            "spearman",
            "check_rmse_upper",
            "meets_target",
        )
    }
    if args.target_error is not None:
        # the acceptance: the final model's error on independent MD snapshots within the target
        out["target_error"] = args.target_error
        out["heldout_within_target"] = {
            name: bool(e["energy_rmse"] <= args.target_error) for name, e in out["errors"].items()
        }
    result_file.write_text(json.dumps(out))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="physics-informed,committee,variance,distance")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--time", type=float, default=25.0, help="fs per trajectory")
    parser.add_argument("--step", type=float, default=0.5, help="fs")
    parser.add_argument("--max-iterations", type=int, default=10)
    parser.add_argument("--target-error", type=float, default=None, help="eV")
    parser.add_argument("--min-checks", type=int, default=0, help="0: the learner's default")
    parser.add_argument("--init-points", type=int, default=0, help="0: the learner's rule")
    parser.add_argument("--workdir", default="uq_kinds")
    parser.add_argument("--name", default=None, help="results/<name>.json (default: uq_kinds)")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    write_start(work)
    tests = test_sets(args, work)
    runs = []
    for kind in args.kinds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            runs.append(run_one(args, work, kind, seed, tests))
            r = runs[-1]
            print(
                f"{kind:17s} seed {seed}: {r['labels']:4d} labels ({r['initial_points']} initial),"
                f" {r['wall_s']:6.0f} s, "
                + ", ".join(
                    f"{name}: E {e['energy_rmse']:.4f} eV F {e['force_rmse']:.4f} eV/Å"
                    for name, e in r["errors"].items()
                )
                + f", Spearman {r['spearman_heldout']:.2f}",
                flush=True,
            )
    summary = {}
    for kind in args.kinds.split(","):
        mine = [r for r in runs if r["kind"] == kind]

        def stat(values):
            values = np.asarray(values, float)
            se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else None
            return {"mean": float(values.mean()), "se": None if se is None else float(se)}

        summary[kind] = {
            "n_seeds": len(mine),
            "labels": stat([r["labels"] for r in mine]),
            "wall_s": stat([r["wall_s"] for r in mine]),
            "spearman_heldout": stat([r["spearman_heldout"] for r in mine]),
            **{
                f"{name}:{q}": stat([r["errors"][name][q] for r in mine])
                for name in tests
                for q in ("energy_rmse", "force_rmse")
            },
        }
    print(json.dumps(summary, indent=1))
    extra = {}
    if args.target_error is not None:
        extra["within_target"] = {
            name: f"{sum(r['heldout_within_target'][name] for r in runs)}/{len(runs)}"
            for name in tests
        }
        met = sum(bool(r["checks"].get("meets_target")) and r["converged"] for r in runs)
        extra["stopped_meeting_target"] = f"{met}/{len(runs)}"
        print(json.dumps(extra, indent=1))
    write_result(
        args.name or ("uq_kinds" if args.target_error is None else "uq_target_error"),
        {
            **extra,
            "task": f"ethanol, GFN2-xTB, KREG; {args.trajectories} trajectories x {args.time:g} fs",
            "units": "wall s; RMSE in eV and eV/Å (energy up to a constant)",
            "runs": runs,
            "summary": summary,
            "test_sets": tests,
        },
    )


if __name__ == "__main__":
    main()
