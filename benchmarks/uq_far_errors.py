"""Why no uncertainty kind lowers the error 200 fs out: where the far test structures lie
relative to the data each run labelled.

    python benchmarks/uq_far_errors.py [--workdir DIR]   (the work folder of uq_kinds.py)

For every finished run of ``uq_kinds.py`` (folders ``<kind>_s<seed>`` with ``result.json``):
the final main model, its labelled structures, and the two MD test sets (25 fs: the region
the learner's trajectories sample; 200 fs: beyond it). Per test structure: the RE-descriptor
distance to the nearest labelled structure (the run's own reference geometry) and the
model's energy error (the set's mean error removed, as in ``uq_kinds.py``). Per run:

- ``d25_p95``: the 95th percentile of the 25 fs structures' nearest distances, i.e. how far
  from the data the sampled region reaches;
- ``beyond``: the fraction of 200 fs structures farther than that;
- ``rmse_within`` / ``rmse_beyond``: the 200 fs energy RMSE of the structures within / beyond
  it; and their share of the 200 fs squared error (``beyond_share``);
- ``spearman_distance_error``: rank correlation of distance with |error| on the 200 fs set.

Results: ``benchmarks/results/uq_far_errors.json`` (per run and pooled per kind).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _results import write_result
from ase.io import read
from scipy.stats import spearmanr

from ase_al import ALRun
from ase_al.descriptors import pair_distances, re_descriptor, squared_distances


def nearest(x: np.ndarray, data: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(squared_distances(x, data).min(axis=1), 0.0))


def one_run(folder: Path, tests: dict) -> dict:
    run = ALRun(folder)
    main = run.model().members[0]
    reference = read(folder / "equilibrium.traj")
    eq = pair_distances(reference.positions)
    labelled = run.labelled()
    data = re_descriptor(np.array([a.positions for a in labelled]), eq)
    out = {}
    for name, frames in tests.items():
        x = re_descriptor(np.array([a.positions for a in frames]), eq)
        error = main.predict(frames, forces=False)["energy"] - np.array(
            [a.get_potential_energy() for a in frames]
        )
        out[name] = (nearest(x, data), error - error.mean())
    d25, _ = out["25fs"]
    d200, e200 = out["200fs"]
    cut = float(np.percentile(d25, 95))
    far = d200 > cut
    squared = e200**2

    def rmse(mask):
        return float(np.sqrt(squared[mask].mean())) if mask.any() else None

    return {
        "labels": len(labelled),
        "d25_median": float(np.median(d25)),
        "d200_median": float(np.median(d200)),
        "d25_p95": cut,
        "beyond": float(far.mean()),
        "rmse_within": rmse(~far),
        "rmse_beyond": rmse(far),
        "beyond_share": float(squared[far].sum() / squared.sum()),
        "spearman_distance_error": float(spearmanr(d200, np.abs(e200)).statistic),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="uq_kinds")
    args = parser.parse_args()
    work = Path(args.workdir)
    tests = {"25fs": read(work / "test_25fs.extxyz", ":"), "200fs": read(work / "test.extxyz", ":")}
    runs = []
    for folder in sorted(work.glob("*_s[0-9]*")):
        if not (folder / "result.json").exists():
            continue
        kind, seed = folder.name.rsplit("_s", 1)
        runs.append({"kind": kind, "seed": int(seed), **one_run(folder, tests)})
        r = runs[-1]
        print(
            f"{kind:17s} seed {seed}: beyond {100 * r['beyond']:3.0f} % of the 200 fs set, "
            f"RMSE within {r['rmse_within']:.3f} / beyond {r['rmse_beyond'] or 0:.3f} eV, "
            f"share of squared error beyond {100 * r['beyond_share']:.0f} %, "
            f"Spearman(distance, |error|) {r['spearman_distance_error']:.2f}",
            flush=True,
        )
    pooled = {}
    for kind in sorted({r["kind"] for r in runs}):
        mine = [r for r in runs if r["kind"] == kind]
        pooled[kind] = {
            key: float(np.mean([r[key] for r in mine if r[key] is not None]))
            for key in (
                "beyond",
                "rmse_within",
                "rmse_beyond",
                "beyond_share",
                "spearman_distance_error",
            )
        }
        pooled[kind]["n_runs"] = len(mine)
    print(json.dumps(pooled, indent=1))
    write_result(
        "uq_far_errors",
        {
            "task": "ethanol, GFN2-xTB, KREG (uq_kinds.py runs); RE distances to labelled data",
            "units": "RE-descriptor distance (dimensionless); RMSE in eV",
            "runs": runs,
            "per_kind_mean": pooled,
        },
    )


if __name__ == "__main__":
    main()
