"""Throughput of uncertainty-checked MD: batch_md vs one ASE VelocityVerlet per trajectory.

    python benchmarks/batch_md.py [--model KREG|ANI] [--trajectories 100] [--steps 1000]
                                  [--loop-steps 100]

Model: the physics-informed KREG pair (main 500, auxiliary 250 ethanol GFN2-xTB structures,
energies only, fixed σ/λ so that training takes no time), uncertainty threshold set to
infinity so that every trajectory runs its full length. Initial conditions are the data
set's own 300 K Wigner samples (positions) with zero momenta. batch_md runs all
trajectories × steps; the per-trajectory loop runs every trajectory for --loop-steps steps
(the loop's cost per step is constant, so fewer steps measure the same rate).
With ``--model ANI`` the pair is two ANI networks (main on energies + forces, auxiliary on
energies only, 20 epochs each: throughput does not depend on how well they are trained).
MLatom 3.25.5's ``md_parallel`` (its batched MD) runs the same starts with its own KREG
(MLatomF, same σ/λ, main model only: no uncertainty) in its virtual environment
(../peer-venv/bin/python or $MLATOM_PYTHON) for --peer-steps steps.
Reported: trajectory-steps per second and the ratios.
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

from ase_al.calculators import ANI, KREG, Committee
from ase_al.samplers import batch_md, md

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "ethanol_gfn2.extxyz"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["KREG", "ANI"], default="KREG")
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--loop-steps", type=int, default=100)
    parser.add_argument("--peer-steps", type=int, default=200)
    parser.add_argument(
        "--peer-python",
        default=os.environ.get(
            "MLATOM_PYTHON", str(HERE.parents[1] / "peer-venv" / "bin" / "python")
        ),
    )
    args = parser.parse_args()
    frames = read(DATA, ":")
    order = np.random.default_rng(0).permutation(np.arange(1, 1501))
    main_data, aux_data = [frames[i] for i in order[:500]], [frames[i] for i in order[500:750]]
    if args.model == "KREG":
        main_model = KREG(sigma=3.0, lambda_=1e-8).train(main_data)
        aux_model = KREG(sigma=3.0, lambda_=1e-8).train(aux_data)
    else:
        main_model = ANI(max_epochs=20, device="cpu").train(main_data, forces=True)
        aux_model = ANI(max_epochs=20, device="cpu", seed=1).train(aux_data, forces=False)
    pair = Committee.physics_informed(main_model, aux_model)
    starts = [frames[i].copy() for i in order[750 : 750 + args.trajectories]]
    for atoms in starts:
        atoms.calc = None
        atoms.set_momenta(np.zeros((len(atoms), 3)))
    time_step = 0.5

    t0 = time.perf_counter()
    result = batch_md(pair, starts, np.inf, args.steps * time_step, time_step, progress=False)
    batch_rate = args.trajectories * args.steps / (time.perf_counter() - t0)
    assert result.n_certain == args.trajectories

    t0 = time.perf_counter()
    md(pair, starts, np.inf, args.loop_steps * time_step, time_step, progress=False)
    loop_rate = args.trajectories * args.loop_steps / (time.perf_counter() - t0)

    peer = None
    if Path(args.peer_python).exists() and args.model == "KREG":
        out = subprocess.run(
            [
                args.peer_python,
                str(HERE / "_mlatom_batch_md.py"),
                str(DATA),
                str(args.trajectories),
                str(args.peer_steps),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        peer = json.loads(out.stdout.strip().splitlines()[-1])["trajectory_steps_per_s"]

    print(f"{args.trajectories} ethanol trajectories, {args.model} pair (500/250 training points)")
    print(f"batch_md           : {batch_rate:10.0f} trajectory-steps/s ({args.steps} steps)")
    print(
        f"ASE VelocityVerlet : {loop_rate:10.0f} trajectory-steps/s ({args.loop_steps} steps each)"
    )
    if peer is not None:
        print(
            f"MLatom md_parallel : {peer:10.0f} trajectory-steps/s "
            f"({args.peer_steps} steps, one model)"
        )
    print(f"ratio batch_md / per-trajectory loop: {batch_rate / loop_rate:.1f} (target >= 5)")
    write_result(
        f"batch_md_{args.model.lower()}",
        {
            "units": "trajectory-steps per second",
            "n_trajectories": args.trajectories,
            "batch_md": batch_rate,
            "ase_velocity_verlet_loop": loop_rate,
            "mlatom_md_parallel": peer,
            "ratio_batch_md_to_loop": batch_rate / loop_rate,
            "ratio_batch_md_to_mlatom": None if peer is None else batch_rate / peer,
        },
        peer=None if peer is None else {"name": "MLatom", "version": "3.25.5"},
    )
    if peer is not None:
        print(f"ratio batch_md / MLatom md_parallel: {batch_rate / peer:.1f}")
    elif args.model != "KREG":
        print("MLatom's batched MD is measured with KREG only (run without --model ANI)")
    else:
        print(f"MLatom not found at {args.peer_python}: peer not measured")


if __name__ == "__main__":
    main()
