"""Active learning across conformers (glycine) and across a reaction (Diels-Alder), checked
against the reference (GFN2-xTB) itself: the acceptance runs of the reactive/multi-conformer
examples.

    python benchmarks/reactive_al.py glycine [--model ANI] [--max-epochs 300] [--target 1]
        [--workdir DIR]
    python benchmarks/reactive_al.py diels-alder [--model ANI] [--max-epochs 300] [--target 1]
        [--trajectories 100] [--fs 100] [--workdir DIR]

Each runs its example (the example is the procedure; every stage resumes from its files when
killed) and judges the example's ``summary.json``:

``--target`` (kcal/mol) is the learner's ``Uncertainty(target_error=...)``; the networks
continue from the previous iteration's weights (``warm_start``).

**glycine** (``examples/glycine_conformers.py WORK 40 MODEL MAX_EPOCHS TARGET``): the reference's
conformers, all starting structures of one ``ActiveLearner``; every conformer re-optimised
with the learned potential. Acceptance (#23): relative energies within 0.5 kcal/mol and
minima within 0.05 Å RMSD of GFN2-xTB's, for every conformer.

**diels-alder** (``examples/diels_alder.py WORK N FS MODEL MAX_EPOCHS TARGET``): a potential learned
from the GFN2-xTB saddle point and cyclohexene; N transition-state-sampled initial conditions
(300 K, seeded) propagated FS fs each way on it and on GFN2-xTB directly (two worker
processes). Acceptance (#23): direct-reaction fractions and mean C-C bond-formation gaps
within their combined standard errors, the learned barrier within 1 kcal/mol.

Results: ``benchmarks/results/reactive_al_<task>.json`` (labels, wall times, the direct run's
cost). ``--along-the-run --workdir DIR`` judges every finished iteration's model of a run
(going on or finished) the same way, without learning:
``results/reactive_al_<task>_along_the_run.json`` (diels-alder: ``--iterations 6,10`` for
some; each iteration's trajectories take minutes and are kept in ``DIR/along_the_run``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from _results import write_result


def run_example(name: str, work: Path, *arguments) -> dict:
    """Run ``examples/<name> WORK ARGUMENTS`` (the example is the procedure) and return its
    ``summary.json`` with the wall time of this call."""
    import subprocess
    import sys

    example = Path(__file__).resolve().parent.parent / "examples" / name
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(example), str(work), *arguments], check=True)
    summary = json.loads((work / "summary.json").read_text())
    summary["wall_s_this_call"] = time.perf_counter() - t0
    return summary


def meets_glycine_acceptance(max_abs_deviation_kcal_mol: float, max_rmsd_A: float) -> bool:
    """#23: relative energies within 0.5 kcal/mol and minima within 0.05 Å, every conformer."""
    return bool(max_abs_deviation_kcal_mol <= 0.5 and max_rmsd_A <= 0.05)


def glycine(args, work: Path) -> dict:
    """``examples/glycine_conformers.py WORK 40 MODEL MAX_EPOCHS TARGET``, timed; its summary judged
    against the acceptance."""
    summary = run_example(
        "glycine_conformers.py", work, "40", args.model, str(args.max_epochs), str(args.target)
    )
    summary["meets_acceptance"] = meets_glycine_acceptance(
        summary["max_abs_deviation_kcal_mol"], summary["max_rmsd_A"]
    )
    return {"task": "glycine conformers, GFN2-xTB", **summary}


def glycine_along_the_run(args, work: Path) -> dict:
    """Every finished iteration's main model of ``WORK/al`` (a run going on, or finished)
    judged like the final one: its minima from GFN2-xTB's conformers (``reoptimize``), the
    largest deviation of the relative energies and the largest RMSD. Labels: the iteration's
    training points; time: from the starting points (``al/starting_points``, written once) to
    the iteration's models saved."""
    import numpy as np
    from ase import units
    from ase.io import read

    import ase_al
    from ase_al.conformers import reoptimize

    conformers = read(work / "conformers.traj", ":")
    reference = np.array([a.info["reference_energy"] for a in conformers])
    reference = (reference - reference[0]) / (units.kcal / units.mol)
    run = ase_al.ALRun(work / "al")
    # each starting structure's files are written once (equilibrium.traj is rewritten on resume)
    start = min(f.stat().st_mtime for f in (work / "al" / "starting_points").rglob("*.traj"))
    rows = []
    for entry in run.history:
        k = entry["iteration"]
        saved = run.iteration_dir(k) / "models.json"
        main = run.model(iteration=k).members[0]
        energies, rmsds = reoptimize(conformers, main)
        learned = (energies - energies[0]) / (units.kcal / units.mol)
        rows.append(
            {
                "iteration": k,
                "labels": entry["n_train"],
                "elapsed_s": saved.stat().st_mtime - start,
                "deviation_kcal_mol": (learned - reference).round(3).tolist(),
                "max_abs_deviation_kcal_mol": float(np.abs(learned - reference).max()),
                "rmsd_A": rmsds.round(4).tolist(),
                "max_rmsd_A": float(rmsds.max()),
            }
        )
        rows[-1]["meets_acceptance"] = meets_glycine_acceptance(
            rows[-1]["max_abs_deviation_kcal_mol"], rows[-1]["max_rmsd_A"]
        )
        print(
            f"iteration {k:2d}: {entry['n_train']:5d} labels, {rows[-1]['elapsed_s']:6.0f} s, "
            f"max |dE| {rows[-1]['max_abs_deviation_kcal_mol']:.2f} kcal/mol, "
            f"max RMSD {rows[-1]['max_rmsd_A']:.3f} A"
        )
    return {
        "task": "glycine conformers, GFN2-xTB: every iteration's model",
        "model": args.model,
        "converged": run.converged,
        "reference_kcal_mol": reference.tolist(),
        "iterations": rows,
    }


def diels_alder(args, work: Path) -> dict:
    """``examples/diels_alder.py WORK N FS MODEL MAX_EPOCHS TARGET``, timed; its summary judged
    against the acceptance."""
    summary = run_example(
        "diels_alder.py",
        work,
        str(args.trajectories),
        str(args.fs),
        args.model,
        str(args.max_epochs),
        str(args.target),
    )
    summary.update(
        judge_diels_alder(
            summary["trajectories"][args.model],
            summary["trajectories"]["GFN2-xTB"],
            summary["learning"]["barrier_kcal_mol"] - summary["barrier_kcal_mol"],
            summary["learning"]["reactant_optimisation_ends_in"],
        ),
        learned_saddle_first_order=len(summary["learning"]["imaginary_frequencies_cm1"]) == 1,
    )
    for name in summary["trajectories"]:  # the gap lists are in the run's summary.json
        summary["trajectories"][name].pop("bond_formation_gaps_fs")
    return {"task": "ethene + 1,3-butadiene Diels-Alder, GFN2-xTB", **summary}


def judge_diels_alder(learned: dict, direct: dict, barrier_deviation: float, basin) -> dict:
    """#23: the learned potential's direct-reaction fraction and mean C-C bond-formation gap
    within the combined standard errors of GFN2-xTB's (``Outcomes.summary`` of each), its
    barrier within 1 kcal/mol (``barrier_deviation``), its reactant minimum (``basin``, the
    species) ethene + butadiene."""
    fraction_gap = abs(learned["direct_fraction"] - direct["direct_fraction"])
    fraction_bar = math.hypot(learned["direct_fraction_error"], direct["direct_fraction_error"])
    gaps = [learned["gap_mean_fs"], direct["gap_mean_fs"]]
    gaps_agree = None not in gaps and abs(gaps[0] - gaps[1]) <= math.hypot(
        learned["gap_error_fs"], direct["gap_error_fs"]
    )
    return {
        "fractions_agree": bool(fraction_gap <= fraction_bar or fraction_gap == 0),
        "gaps_agree": bool(gaps_agree),
        "barrier_deviation_kcal_mol": barrier_deviation,
        "barrier_within_1_kcal_mol": bool(
            abs(barrier_deviation) <= 1.0 and list(basin) == ["C2H4", "C4H6"]
        ),
    }


#: time windows (fs from the barrier top, both halves) of :func:`errors_along`
WINDOWS = ((0, 20), (20, 50), (50, 100.5))


def example_settings(work: Path, trajectories: int, fs_each_way: float) -> dict:
    """The Diels-Alder example's N, FS and GFN2-xTB barrier (kcal/mol, from the complex) in
    ``work``: from its ``summary.json`` when the example has finished, else N and FS as
    given and the barrier from ``stationary.traj``'s reference energies."""
    from ase import units
    from ase.io import read

    path = work / "summary.json"
    if path.exists():
        summary = json.loads(path.read_text())
        return {key: summary[key] for key in ("n_trajectories", "fs_each_way", "barrier_kcal_mol")}
    saddle, reactants, _ = read(work / "stationary.traj", ":")
    energy = saddle.info["reference_energy"] - reactants.info["reference_energy"]
    return {
        "n_trajectories": trajectories,
        "fs_each_way": fs_each_way,
        "barrier_kcal_mol": energy / (units.kcal / units.mol),
    }


def reference_frames(folder: Path, n: int, every: int = 5):
    """Every ``every``-th frame (1 fs apart) of the first ``n`` trajectories' halves in
    ``folder`` (the example's direct GFN2-xTB run), with their times (fs)."""
    from ase.io import read

    frames, times = [], []
    for k in range(n):
        for way in ("forward", "backward"):
            half = read(folder / f"{k:03d}_{way}.traj", f"::{every}")
            frames += half
            times += [every * j for j in range(len(half))]
    return frames, times


#: fs: the end window of the example's classification (``classify(end_fs=...)``): a hot
#: product's bond caught stretched in the last frame is still a bond
END_FS = 20.0
#: a new C-C bond is timed when it first comes within 1.6 Å (``classify(bond_time_scale=)``,
#: as the example does; C's covalent radius is 0.76 Å)
BOND_TIME_SCALE = 1.6 / (2 * 0.76)


def judged(halves, reactants, product) -> dict:
    """The example's classification of halves in pairs (ends over the last :data:`END_FS`
    fs, bonds timed at :data:`BOND_TIME_SCALE`) as ``Outcomes.summary()``, with each half's
    class (``labels``), its class by its last frame alone (``labels_last_frame``) and its
    bond-formation gap (``gaps_by_half``, fs; None without two new bonds), for pairing."""
    from ase_al.reactions import classify

    outcomes = classify(
        halves, reactants, product, 1.0, end_fs=END_FS, bond_time_scale=BOND_TIME_SCALE
    )
    return {
        **outcomes.summary(),
        "labels": outcomes.labels,
        "labels_last_frame": classify(halves, reactants, product).labels,
        "gaps_by_half": outcomes.gaps(),
    }


def read_halves(folder: Path, n: int) -> list:
    """Both halves of each of the first ``n`` trajectories in ``folder``, in pairs (forward,
    backward; ``<k>_forward.traj``, frames 1 fs apart)."""
    from ase.io import read

    return [
        read(folder / f"{k:03d}_{way}.traj", ":")
        for k in range(n)
        for way in ("forward", "backward")
    ]


def reference_outcomes(folder: Path, n: int, reactants, product) -> dict:
    """:func:`judged` for the example's direct GFN2-xTB run in ``folder`` (every half,
    forward and backward of each trajectory, frames 1 fs apart)."""
    return judged(read_halves(folder, n), reactants, product)


def paired_gaps(learned: list, reference: list) -> dict:
    """Bond-formation gaps (fs) half by half (the same initial conditions): for the halves
    that formed both bonds on both potentials, the mean of learned − reference and its
    standard error."""
    import numpy as np

    both = [(a, b) for a, b in zip(learned, reference, strict=True) if None not in (a, b)]
    d = np.array([a - b for a, b in both], dtype=float)
    return {
        "halves": len(both),
        "gap_difference_mean_fs": float(d.mean()) if len(d) else None,
        "gap_difference_error_fs": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None,
    }


def direct_fraction(labels: list[str]) -> dict:
    """The direct trajectories of halves in pairs (``Outcomes.direct``), as JSON."""
    from ase_al.reactions import Outcomes

    count, fraction, error = Outcomes(labels).direct()
    return {"direct": count, "direct_fraction": fraction, "direct_fraction_error": error}


def paired(learned: list[str], reference: list[str]) -> dict:
    """The two potentials' outcomes compared trajectory by trajectory (they start from the
    same initial conditions): how many are direct on both, on the learned one only and on
    the reference only; the difference of the direct fractions with its paired standard
    error, √(b + c − (b − c)²/n)/n; and McNemar's exact two-sided p-value for it (a binomial
    test on the b + c discordant trajectories)."""
    import math

    from scipy.stats import binomtest

    from ase_al.reactions import Outcomes

    mine, theirs = Outcomes(learned).joins(), Outcomes(reference).joins()
    n = len(mine)
    both = sum(a and b for a, b in zip(mine, theirs, strict=True))
    only_learned = sum(a and not b for a, b in zip(mine, theirs, strict=True))
    only_reference = sum(b and not a for a, b in zip(mine, theirs, strict=True))
    discordant = only_learned + only_reference
    return {
        "direct_on_both": both,
        "direct_on_the_learned_only": only_learned,
        "direct_on_the_reference_only": only_reference,
        "direct_fraction_difference": (only_learned - only_reference) / n,
        "paired_error": math.sqrt(max(discordant - (only_learned - only_reference) ** 2 / n, 0.0))
        / n,
        "mcnemar_p": float(binomtest(only_learned, discordant, 0.5).pvalue) if discordant else 1.0,
    }


def errors_along(model, frames, times) -> dict:
    """The model's errors on GFN2-xTB's own trajectories (:func:`reference_frames`), per
    window of :data:`WINDOWS`: the energy error's mean and standard deviation, its largest
    magnitude (kcal/mol) and the force RMSE (kcal/mol/Å). Where the learned potential is
    wrong along the dynamics it is meant to reproduce, not only at stationary points."""
    import numpy as np
    from ase import units

    kcal_mol = units.kcal / units.mol
    predicted = model.predict(frames, forces=True)
    de = (predicted["energy"] - np.array([a.get_potential_energy() for a in frames])) / kcal_mol
    df = (predicted["forces"] - np.array([a.get_forces() for a in frames])) / kcal_mol
    times = np.asarray(times)
    result = {}
    for lo, hi in WINDOWS:
        s = (times >= lo) & (times < hi)
        result[f"{lo}-{hi:.0f} fs"] = {
            "energy_mean": round(float(de[s].mean()), 3),
            "energy_sd": round(float(de[s].std()), 3),
            "energy_max_abs": round(float(np.abs(de[s]).max()), 2),
            "force_rmse": round(float(np.sqrt(np.mean(df[s] ** 2))), 3),
        }
    return result


#: Å ethene is moved away from butadiene in :func:`dissociation`
SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0)


def ethene_and_butadiene(reactants):
    """The atom indices of the ethene (six atoms) and of the butadiene in ``reactants``."""
    import numpy as np

    from ase_al.reactions import fragments

    ethene = next(part for part in fragments(reactants) if len(part) == 6)
    return ethene, np.setdiff1d(np.arange(len(reactants)), ethene)


def dissociation(reactants):
    """GFN2-xTB's complex with ethene moved rigidly away from butadiene (along the line
    between their centres of mass, by :data:`SHIFTS`) and GFN2-xTB's energies there relative
    to the complex (kcal/mol): the asymptote every backward half runs to."""
    import numpy as np
    from ase import units

    import ase_al

    ethene, rest = ethene_and_butadiene(reactants)
    axis = reactants.positions[ethene].mean(axis=0) - reactants.positions[rest].mean(axis=0)
    frames = []
    for shift in SHIFTS:
        frame = reactants.copy()
        frame.info.clear()
        frame.positions[ethene] += shift * axis / np.linalg.norm(axis)
        frames.append(frame)
    gfn2 = ase_al.methods("GFN2-xTB")
    energies = []
    for frame in frames:
        probe = frame.copy()
        probe.calc = gfn2
        energies.append(probe.get_potential_energy())
    return frames, (np.array(energies) - energies[0]) / (units.kcal / units.mol)


def dissociation_errors(model, frames, reference) -> dict:
    """The model's errors (kcal/mol) along :func:`dissociation`'s curve, by shift (Å)."""
    from ase import units

    e = model.predict(frames, forces=False)["energy"]
    errors = (e - e[0]) / (units.kcal / units.mol) - reference
    return {f"{shift:g}": round(float(x), 2) for shift, x in zip(SHIFTS, errors, strict=True)}


def asynchronous_mode(vibrations, saddle) -> int:
    """Index (among the vibrations) of the saddle point's mode that most changes the
    difference of the two forming C-C bonds (C2-C3 minus C4-C5; the example's numbering):
    the mode along which one bond runs ahead of the other."""
    import numpy as np

    p = saddle.positions
    gradient = np.zeros_like(p)
    for (i, j), sign in (((2, 3), 1.0), ((4, 5), -1.0)):
        unit = (p[i] - p[j]) / np.linalg.norm(p[i] - p[j])
        gradient[i] += sign * unit
        gradient[j] -= sign * unit
    overlap = np.abs(np.einsum("kad,ad->k", vibrations.modes, gradient))
    return int(np.argmax(overlap[1:]) + 1)  # not the reaction coordinate (mode 0)


def modes_at_the_saddle(model, saddle, reference) -> dict:
    """The model's harmonic frequencies (cm⁻¹) at GFN2-xTB's saddle point against
    GFN2-xTB's (``reference``, a HarmonicAnalysis): the imaginary one and the asynchronous
    mode's (:func:`asynchronous_mode`), which sets how far one bond runs ahead."""
    import ase_al

    mine = ase_al.freq(saddle.copy(), model, ir=False)
    return {
        "imaginary_cm1": float(mine.frequencies[0]),
        "reference_imaginary_cm1": float(reference.frequencies[0]),
        "asynchronous_mode_cm1": float(mine.frequencies[asynchronous_mode(mine, saddle)]),
        "reference_asynchronous_mode_cm1": float(
            reference.frequencies[asynchronous_mode(reference, saddle)]
        ),
    }


def diels_alder_along_the_run(args, work: Path) -> dict:
    """Every finished iteration's main model of ``WORK/al`` (or those of ``--iterations``, with
    those judged before) judged like the final one: its own barrier
    (``ase_al.reactions.barrier`` from GFN2-xTB's saddle point and complex), its energies at
    GFN2-xTB's stationary points, along GFN2-xTB's own trajectories (:func:`errors_along`) and
    along the complex's dissociation (:func:`dissociation`),
    and the example's N initial conditions propagated on it, against the direct GFN2-xTB run
    of the example (``WORK/GFN2-xTB``), both classified by :func:`judged`. One iteration's
    trajectories take minutes: each result is kept in
    ``WORK/along_the_run/iteration_<k>.v2.json`` and read back (``iteration_<k>.json``, judged
    with the earlier definitions, is not)."""
    import numpy as np
    from ase import units
    from ase.io import read

    import ase_al
    from ase_al.active_learning import checks
    from ase_al.reactions import barrier, propagate_both_ways
    from ase_al.samplers import transition_state_sampling

    kcal_mol = units.kcal / units.mol
    saddle, reactants, cyclohexene = read(work / "stationary.traj", ":")
    # the example writes summary.json when its learning has finished; a run going on has
    # none yet: N and FS as given here, the barrier from the stationary points' energies
    reference = example_settings(work, args.trajectories, args.fs)
    n, fs = reference["n_trajectories"], reference["fs_each_way"]
    # GFN2-xTB's halves classified here as the learned ones are (summary.json may be older)
    direct = reference_outcomes(work / "GFN2-xTB", n, reactants, cyclohexene)
    stationary = [reactants, saddle, cyclohexene]
    e_ref = np.array([a.info["reference_energy"] for a in stationary])
    vibrations = ase_al.HarmonicAnalysis.read(work / "ts_vibrations.json")
    samples = transition_state_sampling(saddle, vibrations, n, 300.0, seed=0)  # the example's
    run = ase_al.ALRun(work / "al")
    start = min(f.stat().st_mtime for f in (work / "al" / "starting_points").rglob("*.traj"))
    wanted = set(args.iterations) if args.iterations else None
    cache = work / "along_the_run"
    cache.mkdir(exist_ok=True)
    rows = []
    along = reference_frames(work / "GFN2-xTB", n)
    apart = dissociation(reactants)
    for entry in run.history:
        k = entry["iteration"]
        # judged before: reported again, whatever --iterations says (iteration_<k>.json:
        # judged with bonds timed at their last formation, by last frames; not reported)
        path = cache / f"iteration_{k}.v2.json"
        if path.exists():
            row = json.loads(path.read_text())
            if "modes_at_the_saddle" not in row:  # judged before this measure
                main = run.model(iteration=k).members[0]
                row["modes_at_the_saddle"] = modes_at_the_saddle(main, saddle, vibrations)
                path.write_text(json.dumps(row, indent=1))
            rows.append(row)
            continue
        if wanted is not None and k not in wanted:
            continue
        main = run.model(iteration=k).members[0]
        at_reference = (main.predict(stationary, forces=False)["energy"] - e_ref) / kcal_mol
        own = barrier(main, saddle, reactants)
        t0 = time.perf_counter()
        pairs = propagate_both_ways(samples, main, fs, 0.5, 2, progress=False)
        learned = judged([half for pair in pairs for half in pair], reactants, cyclohexene)
        learned["wall_s"] = time.perf_counter() - t0
        learned.pop("bond_formation_gaps_fs")
        deviation = own.energy / kcal_mol - reference["barrier_kcal_mol"]
        row = {
            "iteration": k,
            "labels": entry["n_train"],
            "elapsed_s": (run.iteration_dir(k) / "models.json").stat().st_mtime - start,
            "errors_at_reference_kcal_mol": dict(
                zip(
                    ("complex", "saddle", "cyclohexene"),
                    at_reference.round(2).tolist(),
                    strict=True,
                )
            ),
            "errors_along_reference": errors_along(main, *along),
            "dissociation_errors_kcal_mol": dissociation_errors(main, *apart),
            "modes_at_the_saddle": modes_at_the_saddle(main, saddle, vibrations),
            "barrier_kcal_mol": own.energy / kcal_mol,
            "barrier_problem": own.problem,
            "reactant_optimisation_ends_in": own.species,
            "trajectories": learned,
            **judge_diels_alder(learned, direct, deviation, own.species),
        }
        path.write_text(json.dumps(row, indent=1))
        rows.append(row)
    for row in rows:
        t = row["trajectories"]
        # what the run's frequency check (Sampling.frequency_tolerance) found with this model
        sampled = run.iteration_dir(row["iteration"]) / "sampling.json"
        if sampled.exists():
            row["frequency_checks"] = json.loads(sampled.read_text()).get("frequency_checks")
        # the run's own held-out test of its stationary points (ALRun.validated_iteration),
        # recorded by runs from session 20 on: its verdict beside the judged barrier
        recorded = run.history[row["iteration"] - 1].get("relaxation_errors")
        if recorded is not None:
            row["relaxation_errors_kcal_mol"] = {
                key: None if e is None else round(e / kcal_mol, 2) for key, e in recorded.items()
            }
            row["validated_within_1_kcal_mol"] = checks.validated(
                run.history[row["iteration"] - 1], kcal_mol
            )
        row["paired"] = paired(t["labels"], direct["labels"])
        row["paired_gaps"] = paired_gaps(t["gaps_by_half"], direct["gaps_by_half"])
        row["last_frame"] = {
            **direct_fraction(t["labels_last_frame"]),
            "paired": paired(t["labels_last_frame"], direct["labels_last_frame"]),
        }
    for row in rows:
        t = row["trajectories"]
        late = row["errors_along_reference"]["50-100 fs"]
        print(
            f"iteration {row['iteration']:2d}: along GFN2-xTB's trajectories, 50-100 fs: "
            f"energy error sd {late['energy_sd']:.2f} kcal/mol, "
            f"force RMSE {late['force_rmse']:.2f} kcal/mol/Å"
        )
        apart = row["dissociation_errors_kcal_mol"]
        print(
            f"iteration {row['iteration']:2d}: ethene moved away from the complex: error "
            + ", ".join(f"{v:+.1f} at {k} Å" for k, v in apart.items() if k in ("1", "2", "10"))
            + " kcal/mol"
        )
        print(
            f"iteration {row['iteration']:2d}: {row['labels']:5d} labels, "
            f"barrier {row['barrier_kcal_mol']:5.1f} kcal/mol "
            f"({' + '.join(row['reactant_optimisation_ends_in'])}), "
            f"direct {100 * t['direct_fraction']:.0f} ± {100 * t['direct_fraction_error']:.0f} %, "
            f"gap {t['gap_mean_fs']:.1f} ± {t['gap_error_fs']:.1f} fs"
        )
        modes = row["modes_at_the_saddle"]
        print(
            f"iteration {row['iteration']:2d}: at GFN2-xTB's saddle point, imaginary "
            f"{modes['imaginary_cm1']:.0f} cm-1 (GFN2-xTB {modes['reference_imaginary_cm1']:.0f}),"
            f" asynchronous mode {modes['asynchronous_mode_cm1']:.0f} cm-1 "
            f"(GFN2-xTB {modes['reference_asynchronous_mode_cm1']:.0f})"
        )
        for check in row.get("frequency_checks") or []:
            print(
                f"iteration {row['iteration']:2d}: starting structure {check['starting_point']}, "
                f"{check['n_off']} of {check['modes_checked']} modes more than the tolerance "
                f"off (largest {100 * check['max_relative_error']:.0f} %): "
                + ", ".join(f"{m['reference_cm1']:.0f}: {m['model_cm1']:.0f}" for m in check["off"])
            )
        if "relaxation_errors_kcal_mol" in row:
            print(
                f"iteration {row['iteration']:2d}: its relaxations against GFN2-xTB "
                f"(kcal/mol, by starting structure) {row['relaxation_errors_kcal_mol']}: "
                + ("validated" if row["validated_within_1_kcal_mol"] else "not validated")
                + " within 1 kcal/mol"
            )
        gaps = row["paired_gaps"]
        print(
            f"iteration {row['iteration']:2d}: gap half by half ({gaps['halves']} halves), "
            f"learned - GFN2-xTB {gaps['gap_difference_mean_fs']:+.1f} ± "
            f"{gaps['gap_difference_error_fs']:.1f} fs"
        )
        for name, pair in (
            (f"bonds over the last {END_FS:g} fs", row["paired"]),
            ("last frame", row["last_frame"]["paired"]),
        ):
            print(
                f"iteration {row['iteration']:2d} ({name}): trajectory by trajectory, "
                f"direct on both {pair['direct_on_both']}, on it only "
                f"{pair['direct_on_the_learned_only']}, on GFN2-xTB only "
                f"{pair['direct_on_the_reference_only']}: difference "
                f"{100 * pair['direct_fraction_difference']:+.0f} ± "
                f"{100 * pair['paired_error']:.0f} % (McNemar p = {pair['mcnemar_p']:.2g})"
            )
    print(
        f"GFN2-xTB: direct {100 * direct['direct_fraction']:.0f} ± "
        f"{100 * direct['direct_fraction_error']:.0f} %, gap {direct['gap_mean_fs']:.1f} ± "
        f"{direct['gap_error_fs']:.1f} fs"
    )
    direct = {k: v for k, v in direct.items() if k != "bond_formation_gaps_fs"}
    return {
        "task": "ethene + 1,3-butadiene Diels-Alder, GFN2-xTB: every iteration's model",
        "model": args.model,
        "classification": {
            "end_fs": END_FS,
            "bond_time_scale": BOND_TIME_SCALE,
            "C-C_bond_formed_within_A": BOND_TIME_SCALE * 2 * 0.76,
        },
        "converged": run.converged,
        "reference_barrier_kcal_mol": reference["barrier_kcal_mol"],
        "GFN2-xTB_trajectories": direct,
        "GFN2-xTB_trajectories_last_frame": direct_fraction(direct["labels_last_frame"]),
        "iterations": rows,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("glycine", "diels-alder"))
    parser.add_argument("--model", default="ANI")
    parser.add_argument("--max-epochs", type=int, default=300, help="ANI/MACE")
    parser.add_argument("--target", type=float, default=1.0, help="target error, kcal/mol")
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--fs", type=float, default=100.0, help="fs each way")
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--along-the-run",
        action="store_true",
        help="judge every finished iteration's model of WORKDIR (no learning)",
    )
    parser.add_argument(
        "--iterations",
        type=lambda text: [int(k) for k in text.split(",")],
        default=None,
        help="with --along-the-run for diels-alder: only these iterations, e.g. 6,10",
    )
    args = parser.parse_args()
    work = Path(args.workdir or f"reactive_{args.task}")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    name = f"reactive_al_{args.task.replace('-', '_')}"
    if args.along_the_run:
        along = glycine_along_the_run if args.task == "glycine" else diels_alder_along_the_run
        result, name = along(args, work), name + "_along_the_run"
    else:
        result = (glycine if args.task == "glycine" else diels_alder)(args, work)
    result["wall_s_this_call"] = time.perf_counter() - t0
    write_result(name, result)


if __name__ == "__main__":
    main()
