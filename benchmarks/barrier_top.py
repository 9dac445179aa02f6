"""How much the Diels-Alder direct fraction hangs on where the barrier top lies, and where
each learned network of a run puts it.

    python benchmarks/barrier_top.py --workdir DIR [--shifts -0.05,0.05] [--iterations 1,2]

DIR is a workdir of ``examples/diels_alder.py`` (its GFN2-xTB saddle point, modes, and the
direct GFN2-xTB run of its N transition-state-sampled initial conditions, ``DIR/GFN2-xTB``).

1. **Sensitivity.** For each shift δ (Å·amu^1/2, along GFN2-xTB's reaction coordinate as its
   modes give the sign), the same N initial conditions are propagated both ways on GFN2-xTB
   with its barrier top moved by δ (:class:`ase_al.reactions.ShiftedBarrierTop`, two worker
   processes) and classified as the example does; against the direct run, trajectory by
   trajectory (the same initial conditions). A few minutes per shift; kept in
   ``DIR/barrier_top/shift_<δ>/``.
2. **A soft mode** (``--soften MODE:CM1``): the same with one of the saddle point's real
   modes softened near the top, as a network may have it.
3. **The networks.** Each finished iteration's main network of ``DIR/al``: where it puts the
   top (:func:`ase_al.samplers.modes.check_barrier_top` over all N initial conditions,
   labelled once with GFN2-xTB and kept in ``DIR/barrier_top/reference_forces.npy``), beside
   its direct fraction where ``reactive_al.py diels-alder --along-the-run`` has judged it.
   ``--networks-only`` measures these alone (``results/barrier_top_diels_alder_networks.json``).

Results: ``benchmarks/results/barrier_top_diels_alder.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _results import write_result
from reactive_al import example_settings, judged, paired, reference_outcomes


def initial_conditions(work: Path, trajectories: int, fs_each_way: float):
    """The example's settings (:func:`reactive_al.example_settings`), stationary points,
    GFN2-xTB's modes at the saddle point and its N initial conditions (the same seed)."""
    from ase.io import read

    import ase_al
    from ase_al.samplers import transition_state_sampling

    summary = example_settings(work, trajectories, fs_each_way)
    saddle, reactants, cyclohexene = read(work / "stationary.traj", ":")
    vibrations = ase_al.HarmonicAnalysis.read(work / "ts_vibrations.json")
    n = summary["n_trajectories"]
    samples = transition_state_sampling(saddle, vibrations, n, 300.0, seed=0)
    return summary, saddle, reactants, cyclohexene, vibrations, samples


def labelled_samples(work: Path, samples) -> list:
    """The initial conditions' positions with GFN2-xTB's forces (computed once)."""
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    import ase_al
    from ase_al.calculators.committee import predict_batch

    path = work / "barrier_top" / "reference_forces.npy"
    if path.exists():
        forces = np.load(path)
    else:
        gfn2 = ase_al.methods("GFN2-xTB")
        forces = np.asarray(predict_batch(gfn2, samples, forces=True)["forces"], float)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, forces)
    labelled = []
    for atoms, f in zip(samples, forces, strict=True):
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, forces=f)
        labelled.append(copy)
    return labelled


def sensitivity(work: Path, shifts, summary, saddle, reactants, product, vibrations, samples):
    from ase.io import read, write

    import ase_al
    from ase_al.executors import default_executor
    from ase_al.reactions import ShiftedBarrierTop, propagate_both_ways
    from ase_al.samplers.modes import check_barrier_top

    n, fs = summary["n_trajectories"], summary["fs_each_way"]
    direct = reference_outcomes(work / "GFN2-xTB", n, reactants, product)
    labelled = labelled_samples(work, samples)
    rows = []
    for shift in shifts:
        surface = ShiftedBarrierTop(ase_al.methods("GFN2-xTB"), saddle, vibrations, shift)
        folder = work / "barrier_top" / f"shift_{shift:+.3f}"
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if not (folder / f"{n - 1:03d}_backward.traj").exists():
            pairs = propagate_both_ways(
                samples, surface, fs, 0.5, 2, executor=default_executor(), progress=False
            )
            for k, (forward, backward) in enumerate(pairs):
                write(folder / f"{k:03d}_forward.traj", forward)
                write(folder / f"{k:03d}_backward.traj", backward)
        halves = [
            read(folder / f"{k:03d}_{way}.traj", ":")
            for k in range(n)
            for way in ("forward", "backward")
        ]
        outcome = judged(halves, reactants, product)
        measured = check_barrier_top(surface, labelled, saddle, vibrations, 300.0, 0.1)
        row = {
            "shift": shift,
            "shift_A": measured.shift_A,
            "shift_in_widths": measured.shift / measured.width,
            "measured_shift": measured.shift,
            "direct": outcome["direct"],
            "direct_fraction_error": outcome["direct_fraction_error"],
            "gap_mean_fs": outcome["gap_mean_fs"],
            "gap_error_fs": outcome["gap_error_fs"],
            "against_gfn2_xtb": paired(outcome["labels"], direct["labels"]),
            "wall_s_this_call": time.perf_counter() - t0,
        }
        rows.append(row)
        p = row["against_gfn2_xtb"]
        print(
            f"top moved by {shift:+.3f} Å·amu^1/2 ({row['shift_A']:+.4f} Å, "
            f"{row['shift_in_widths']:+.2f} widths): {row['direct']} direct of {n} "
            f"(GFN2-xTB {direct['direct']}; direct here only {p['direct_on_the_learned_only']}, "
            f"on GFN2-xTB only {p['direct_on_the_reference_only']}), gap "
            f"{row['gap_mean_fs']:.2f} ± {row['gap_error_fs']:.2f} fs",
            flush=True,
        )
    return direct, rows


def softened(calc, saddle, vibrations, mode: int, cm1: float, width: float = 1.0):
    """``calc`` with the saddle point's ``mode`` at ``cm1`` instead of its own wavenumber
    near the top (an ASE calculator): -½Δλ·q_k²·exp(-(q_0/width)²) added, q_k the
    mass-weighted displacement along the mode, q_0 along the reaction coordinate, Δλ the
    change of the mode's curvature (eV/(Å²·amu))."""
    import math

    import numpy as np
    from ase import units
    from ase.calculators.calculator import Calculator, all_changes

    from ase_al.samplers.modes import reaction_coordinate
    from ase_al.simulations import HBAR

    sqrt_m = np.repeat(saddle.get_masses(), 3) ** 0.5
    k0 = reaction_coordinate(saddle, vibrations)[0]
    along_mode = vibrations.mass_weighted_modes[mode] * sqrt_m  # dq_k/dx
    along_top = vibrations.mass_weighted_modes[k0] * sqrt_m
    origin = saddle.positions.ravel().copy()

    def curvature(nu):
        return (nu * units.invcm / HBAR) ** 2

    change = curvature(vibrations.frequencies[mode]) - curvature(cm1)

    class Surface(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            work = self.atoms.copy()
            work.calc = calc
            dx = self.atoms.positions.ravel() - origin
            qk, q0 = float(along_mode @ dx), float(along_top @ dx)
            g = math.exp(-((q0 / width) ** 2))
            v = -0.5 * change * qk**2 * g
            dv = -change * qk * g * along_mode + v * (-2 * q0 / width**2) * along_top
            self.results = {
                "energy": work.get_potential_energy() + v,
                "forces": work.get_forces() - dv.reshape(-1, 3),
            }

    return Surface()


def soften(work: Path, spec: str, summary, saddle, reactants, product, vibrations, samples):
    """The same initial conditions on GFN2-xTB with ``spec`` = ``MODE:CM1`` (the saddle
    point's mode MODE, by index among the vibrations, softened to CM1 near the top): does
    a network's soft mode explain its outcomes?"""
    from ase.io import read, write

    import ase_al
    from ase_al.executors import default_executor
    from ase_al.reactions import propagate_both_ways
    from ase_al.samplers.modes import frequencies_along_modes

    mode, cm1 = int(spec.split(":")[0]), float(spec.split(":")[1])
    n, fs = summary["n_trajectories"], summary["fs_each_way"]
    direct = reference_outcomes(work / "GFN2-xTB", n, reactants, product)
    surface = softened(ase_al.methods("GFN2-xTB"), saddle, vibrations, mode, cm1)
    folder = work / "barrier_top" / f"mode_{mode}_{cm1:.0f}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / f"{n - 1:03d}_backward.traj").exists():
        pairs = propagate_both_ways(
            samples, surface, fs, 0.5, 2, executor=default_executor(), progress=False
        )
        for k, (forward, backward) in enumerate(pairs):
            write(folder / f"{k:03d}_forward.traj", forward)
            write(folder / f"{k:03d}_backward.traj", backward)
    halves = [
        read(folder / f"{k:03d}_{way}.traj", ":")
        for k in range(n)
        for way in ("forward", "backward")
    ]
    outcome = judged(halves, reactants, product)
    row = {
        "mode": mode,
        "reference_cm1": float(vibrations.frequencies[mode]),
        "softened_to_cm1": float(frequencies_along_modes(surface, saddle, vibrations)[mode]),
        "direct": outcome["direct"],
        "gap_mean_fs": outcome["gap_mean_fs"],
        "gap_error_fs": outcome["gap_error_fs"],
        "against_gfn2_xtb": paired(outcome["labels"], direct["labels"]),
    }
    p = row["against_gfn2_xtb"]
    print(
        f"mode {mode} ({row['reference_cm1']:.0f} cm-1) at {row['softened_to_cm1']:.0f} cm-1: "
        f"{row['direct']} direct (GFN2-xTB {direct['direct']}; here only "
        f"{p['direct_on_the_learned_only']}, on GFN2-xTB only "
        f"{p['direct_on_the_reference_only']})",
        flush=True,
    )
    return row


def networks(work: Path, wanted, saddle, vibrations, samples):
    import ase_al
    from ase_al.samplers.modes import check_barrier_top

    labelled = labelled_samples(work, samples)
    run = ase_al.ALRun(work / "al")
    rows = []
    for entry in run.history:
        k = entry["iteration"]
        if wanted and k not in wanted:
            continue
        main = run.model(iteration=k).members[0]
        check = check_barrier_top(main, labelled, saddle, vibrations, 300.0, 0.1)
        row = {"iteration": k, "labels": entry["n_train"], **check.summary()}
        judged_path = work / "along_the_run" / f"iteration_{k}.v2.json"
        if judged_path.exists():
            judged_row = json.loads(judged_path.read_text())
            row["direct"] = judged_row.get("direct")
            row["against_gfn2_xtb"] = judged_row.get("paired")
        rows.append(row)
        print(
            f"iteration {k:2d} ({entry['n_train']} labels): top at {check.shift:+.4f} ± "
            f"{check.error:.4f} Å·amu^1/2 ({check.shift / check.width:+.2f} widths)"
            + (f", {row['direct']} direct" if row.get("direct") is not None else ""),
            flush=True,
        )
    return rows


def iterations(args) -> set[int]:
    return {int(k) for k in args.iterations.split(",") if k.strip()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--shifts", default="-0.05,0.05", help="Å·amu^1/2, comma-separated")
    parser.add_argument("--iterations", default="", help="comma-separated; default all")
    parser.add_argument("--no-networks", action="store_true")
    parser.add_argument(
        "--networks-only",
        action="store_true",
        help="only the networks of DIR/al (results/barrier_top_diels_alder_networks.json)",
    )
    parser.add_argument(
        "--soften", default="", help="MODE:CM1,...: the saddle point's modes softened near the top"
    )
    parser.add_argument("--trajectories", type=int, default=100, help="N, as the example's")
    parser.add_argument("--fs", type=float, default=100.0, help="fs each way, as the example's")
    args = parser.parse_args()
    work = args.workdir
    summary, saddle, reactants, product, vibrations, samples = initial_conditions(
        work, args.trajectories, args.fs
    )
    if args.networks_only:  # a run going on: its networks, the sensitivity left as it is
        rows = networks(work, iterations(args), saddle, vibrations, samples)
        write_result("barrier_top_diels_alder_networks", {"workdir": str(work), "networks": rows})
        return
    shifts = [float(s) for s in args.shifts.split(",") if s.strip()]
    direct, rows = sensitivity(
        work, shifts, summary, saddle, reactants, product, vibrations, samples
    )
    result = {
        "task": "ethene + 1,3-butadiene Diels-Alder, GFN2-xTB: direct fraction against the "
        "barrier top's position",
        "n_trajectories": summary["n_trajectories"],
        "fs_each_way": summary["fs_each_way"],
        "gfn2_xtb_direct": direct["direct"],
        "gfn2_xtb_gap_fs": [direct["gap_mean_fs"], direct["gap_error_fs"]],
        "shifted": rows,
    }
    result["softened"] = [
        soften(work, spec, summary, saddle, reactants, product, vibrations, samples)
        for spec in args.soften.split(",")
        if spec.strip()
    ]
    if not args.no_networks and (work / "al" / "state.json").exists():
        result["networks"] = networks(work, iterations(args), saddle, vibrations, samples)
    write_result("barrier_top_diels_alder", result)


if __name__ == "__main__":
    main()
