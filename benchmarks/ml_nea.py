"""ML-NEA cost: wall time in QC calculations, KREG training and ensemble prediction.

    python benchmarks/ml_nea.py [--reference TD-B3LYP/6-31G*] [--molecule H2O]
                                [--n-excitations 3] [--ensemble 50000] [--workers 2]

Runs ase-al's ML-NEA end to end in a fresh directory (optimisation, frequencies, Wigner
ensemble, QC labels in steps of 50 on a local process pool, one KREG per state and quantity,
prediction of the whole ensemble) and prints the time split, the QC calculations used and the
cost of a QC-NEA of the same ensemble extrapolated from the measured time per QC point.
MLatom's ML-NEA needs Gaussian and Newton-X, not available here, so no peer runs.
"""

import argparse
import json
import tempfile
import time

from ase.build import molecule

from ase_al.labelling import default_executor
from ase_al.spectra import MLNEA


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="TD-B3LYP/6-31G*")
    parser.add_argument("--molecule", default="H2O")
    parser.add_argument("--n-excitations", type=int, default=3)
    parser.add_argument("--ensemble", type=int, default=50000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="ml_nea_")
    executor = default_executor(args.workers)
    start = time.perf_counter()
    try:
        result = MLNEA(
            molecule(args.molecule),
            reference=args.reference,
            n_excitations=args.n_excitations,
            ensemble_size=args.ensemble,
            workdir=workdir,
            executor=executor,
        ).run()
    finally:
        executor.shutdown()
    total = time.perf_counter() - start
    t = result["timings"]
    per_point = t["qc"] / result["n_qc"]
    print(json.dumps({"total_s": total, **t, "n_qc": result["n_qc"]}))
    print(
        f"\nML-NEA {args.molecule} {args.reference}, {args.n_excitations} excited states, "
        f"{args.ensemble} ensemble points, {args.workers} workers"
    )
    print(f"total wall time      {total:9.1f} s")
    print(
        f"  QC calculations    {t['qc']:9.1f} s  ({result['n_qc']} points, "
        f"{per_point:.2f} s each on {args.workers} workers)"
    )
    print(f"  KREG training      {t['training']:9.1f} s  ({len(result['history'])} iterations)")
    print(f"  ensemble prediction{t['prediction']:9.1f} s")
    print(f"  rest (opt, freq, sampling, SPC, output) {total - sum(t.values()):.1f} s")
    print(
        f"converged by rRMSE < 0.1: {result['converged']}; history (N, RMSE_geom): "
        f"{[(n, round(r, 4)) for n, r in result['history']]}"
    )
    qc_nea = per_point * args.ensemble
    print(
        f"QC-NEA of all {args.ensemble} points would take ~{qc_nea / 3600:.1f} h "
        f"at the same rate: ML-NEA/QC-NEA cost ratio {total / qc_nea:.4f}"
    )


if __name__ == "__main__":
    main()
