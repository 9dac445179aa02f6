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
   modes softened near the top, as a network may have it. **A random error**
   (``--perturb EPS:SEED,...``, run alone): the same with :func:`perturbed`'s random error
   near the top, the top itself kept; ``--tilt TAU:R0:S,...``: the same with a small step down
   toward the product just past the top (:func:`tilted`); with either, the results (and
   those of ``--soften``, not the shifts) go to
   ``results/barrier_top_diels_alder_perturbed.json``.
3. **The networks.** Each finished iteration's main network of ``DIR/al``: where it puts the
   top (:func:`ase_al.samplers.modes.check_barrier_top` over all N initial conditions,
   labelled once with GFN2-xTB and kept in ``DIR/barrier_top/reference_forces.npy``), beside
   its direct fraction where ``reactive_al.py diels-alder --along-the-run`` has judged it.
   ``--networks-only`` measures these alone (``results/barrier_top_diels_alder_networks.json``).
4. **Where the networks' trajectories part from GFN2-xTB's** (``--paths --iterations K``):
   :func:`paths`, in ``results/barrier_top_diels_alder_paths.json``.
5. **The networks' tops for hotter samples** (``--hot 300,600,1200 --iterations K``):
   :func:`hot`, in ``results/barrier_top_diels_alder_hot.json``.

Results: ``benchmarks/results/barrier_top_diels_alder.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _results import write_result
from ase.calculators.calculator import Calculator, all_changes
from reactive_al import example_settings, judged, paired, read_halves, reference_outcomes


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


def labelled_samples(work: Path, samples, name: str = "reference_forces") -> list:
    """``samples`` (by default the initial conditions) with GFN2-xTB's forces, computed once
    and kept in ``DIR/barrier_top/<name>.npy``."""
    from ase.calculators.singlepoint import SinglePointCalculator

    import ase_al
    from ase_al.calculators.committee import predict_batch

    path = work / "barrier_top" / f"{name}.npy"
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


def propagated(surface, folder: Path, samples, summary, workers: bool = True) -> list:
    """The N initial conditions' halves propagated both ways on ``surface`` (in two worker
    processes, or here without ``workers``), kept in ``folder`` and read back when there."""
    from ase.io import write

    from ase_al.executors import default_executor
    from ase_al.reactions import propagate_both_ways

    n, fs = summary["n_trajectories"], summary["fs_each_way"]
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / f"{n - 1:03d}_backward.traj").exists():
        executor = default_executor() if workers else None
        pairs = propagate_both_ways(samples, surface, fs, 0.5, 2, executor, progress=False)
        for k, (forward, backward) in enumerate(pairs):
            write(folder / f"{k:03d}_forward.traj", forward)
            write(folder / f"{k:03d}_backward.traj", backward)
    return read_halves(folder, n)


def outcomes_on(surface, folder: Path, samples, summary, reactants, product) -> dict:
    """:func:`propagated` on ``surface``, classified as the example does
    (:func:`reactive_al.judged`)."""
    return judged(propagated(surface, folder, samples, summary), reactants, product)


def compared(outcome: dict, direct: dict) -> dict:
    """A surface's direct fraction and bond-formation gap, and its outcomes against
    GFN2-xTB's pair by pair (``against_gfn2_xtb``)."""
    return {
        "direct": outcome["direct"],
        "direct_fraction_error": outcome["direct_fraction_error"],
        "gap_mean_fs": outcome["gap_mean_fs"],
        "gap_error_fs": outcome["gap_error_fs"],
        "against_gfn2_xtb": paired(outcome["labels"], direct["labels"]),
    }


def sensitivity(work: Path, shifts, summary, saddle, reactants, product, vibrations, samples):

    import ase_al
    from ase_al.reactions import ShiftedBarrierTop
    from ase_al.samplers.modes import check_barrier_top

    n = summary["n_trajectories"]
    direct = reference_outcomes(work / "GFN2-xTB", n, reactants, product)
    labelled = labelled_samples(work, samples)
    rows = []
    for shift in shifts:
        surface = ShiftedBarrierTop(ase_al.methods("GFN2-xTB"), saddle, vibrations, shift)
        folder = work / "barrier_top" / f"shift_{shift:+.3f}"
        t0 = time.perf_counter()
        outcome = outcomes_on(surface, folder, samples, summary, reactants, product)
        measured = check_barrier_top(surface, labelled, saddle, vibrations, 300.0, 0.1)
        row = {
            "shift": shift,
            "shift_A": measured.shift_A,
            "shift_in_widths": measured.shift / measured.width,
            "measured_shift": measured.shift,
            **compared(outcome, direct),
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


class AddedTerm(Calculator):
    """``calc`` plus a term V(x) (an ASE calculator): ``term(positions)`` gives V (eV) and
    dV/dx (eV/Å, any shape of 3N) at the positions (Å, an (N, 3) array)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, calc, term):
        super().__init__()
        self.calc, self.term = calc, term

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.calc
        v, gradient = self.term(self.atoms.positions)
        self.results = {
            "energy": work.get_potential_energy() + v,
            "forces": work.get_forces() - np.reshape(gradient, (-1, 3)),
        }


def softened(calc, saddle, vibrations, mode: int, cm1: float, width: float = 1.0):
    """``calc`` with the saddle point's ``mode`` at ``cm1`` instead of its own wavenumber
    near the top (an ASE calculator; the imaginary mode as a negative ``cm1``):
    -½Δλ·q_k²·exp(-(q_0/width)²) added, q_k the mass-weighted displacement along the mode,
    q_0 along the reaction coordinate, Δλ the change of the mode's curvature (eV/(Å²·amu),
    signed)."""
    import math

    from ase import units

    from ase_al.samplers.modes import reaction_coordinate
    from ase_al.simulations import HBAR

    sqrt_m = np.repeat(saddle.get_masses(), 3) ** 0.5
    k0 = reaction_coordinate(saddle, vibrations)[0]
    along_mode = vibrations.mass_weighted_modes[mode] * sqrt_m  # dq_k/dx
    along_top = vibrations.mass_weighted_modes[k0] * sqrt_m
    origin = saddle.positions.ravel().copy()

    def curvature(nu):  # negative for an imaginary mode (a negative wavenumber)
        return np.sign(nu) * (nu * units.invcm / HBAR) ** 2

    change = curvature(vibrations.frequencies[mode]) - curvature(cm1)

    def term(positions):
        dx = positions.ravel() - origin
        qk, q0 = float(along_mode @ dx), float(along_top @ dx)
        g = math.exp(-((q0 / width) ** 2))
        v = -0.5 * change * qk**2 * g
        return v, -change * qk * g * along_mode + v * (-2 * q0 / width**2) * along_top

    return AddedTerm(calc, term)


def soften(work: Path, spec: str, summary, saddle, reactants, product, vibrations, samples):
    """The same initial conditions on GFN2-xTB with ``spec`` = ``MODE:CM1`` (the saddle
    point's mode MODE, by index among the vibrations, softened to CM1 near the top; several
    at once joined by ``+``, ``1:108+2:162``, and ``top:DELTA`` among them moves the top by
    DELTA Å·amu^1/2 as well): do a network's soft modes explain its outcomes?"""

    import ase_al
    from ase_al.reactions import ShiftedBarrierTop
    from ase_al.samplers.modes import frequencies_along_modes

    parts = spec.split("+")
    shift = sum(float(part.split(":")[1]) for part in parts if part.startswith("top:"))
    changes = [
        (int(part.split(":")[0]), float(part.split(":")[1]))
        for part in parts
        if not part.startswith("top:")
    ]
    n = summary["n_trajectories"]
    direct = reference_outcomes(work / "GFN2-xTB", n, reactants, product)
    surface = ase_al.methods("GFN2-xTB")
    for mode, cm1 in changes:  # each adds its own term near the top
        surface = softened(surface, saddle, vibrations, mode, cm1)
    if shift:
        surface = ShiftedBarrierTop(surface, saddle, vibrations, shift)
    name = "+".join(
        [f"mode_{mode}_{cm1:.0f}" for mode, cm1 in changes]
        + ([f"top_{shift:+.3f}"] if shift else [])
    )
    folder = work / "barrier_top" / name
    outcome = outcomes_on(surface, folder, samples, summary, reactants, product)
    along = frequencies_along_modes(surface, saddle, vibrations)
    row = {
        "modes": [
            {
                "mode": mode,
                "reference_cm1": float(vibrations.frequencies[mode]),
                "softened_to_cm1": float(along[mode]),
            }
            for mode, _ in changes
        ],
        "top_shift": shift,
        "direct": outcome["direct"],
        "gap_mean_fs": outcome["gap_mean_fs"],
        "gap_error_fs": outcome["gap_error_fs"],
        "against_gfn2_xtb": paired(outcome["labels"], direct["labels"]),
    }
    p = row["against_gfn2_xtb"]
    print(
        ", ".join(
            f"mode {m['mode']} ({m['reference_cm1']:.0f} cm-1) at {m['softened_to_cm1']:.0f} cm-1"
            for m in row["modes"]
        )
        + (f", top moved by {shift:+.3f} Å·amu^1/2" if shift else "")
        + f": {row['direct']} direct (GFN2-xTB {direct['direct']}; here only "
        f"{p['direct_on_the_learned_only']}, on GFN2-xTB only "
        f"{p['direct_on_the_reference_only']})",
        flush=True,
    )
    return row


def perturbed(calc, saddle, vibrations, eps: float, seed: int, width: float = 1.0, below_cm1=None):
    """``calc`` plus a random error near the top that leaves the top itself alone: in the
    saddle point's mass-weighted normal coordinates q (q_0 the reaction coordinate),
    V = exp(-(q_0/width)²)·[Σ_k a_k q_k + ½ Σ_kl b_kl q_k q_l] with a_0 = b_00 = 0,
    a_k = eps·λ_k·σ_k·h_k (each real mode's minimum moved by eps of its Wigner width σ_k) and
    b_kl = eps·√|λ_k λ_l|·G_kl (the Hessian off by eps, relative, couplings included), h and
    G standard normal (G symmetric) from ``seed``: a surface as wrong near the top as a
    network may be, with its top where the reference's is (an ASE calculator). With
    ``below_cm1``, only the real modes softer than that (and their couplings to the reaction
    coordinate) are perturbed."""
    import math

    from ase_al.samplers.modes import reaction_coordinate, wigner_widths

    rng = np.random.default_rng(seed)
    sqrt_m = np.repeat(saddle.get_masses(), 3) ** 0.5
    k0 = reaction_coordinate(saddle, vibrations)[0]
    dq_dx = vibrations.mass_weighted_modes * sqrt_m[None, :]  # (n_vib, 3N)
    curvature = np.abs(vibrations.angular_frequencies) ** 2  # eV/(Å²·amu)
    sigma = wigner_widths(vibrations, 300.0)
    linear = eps * curvature * sigma * rng.standard_normal(len(curvature))
    linear[k0] = 0.0
    g = rng.standard_normal((len(curvature), len(curvature)))
    quadratic = eps * np.sqrt(np.outer(curvature, curvature)) * (g + g.T) / math.sqrt(2)
    quadratic[k0, k0] = 0.0
    if below_cm1 is not None:
        kept = (np.abs(vibrations.frequencies) < below_cm1).astype(float)
        linear *= kept
        quadratic *= np.outer(kept, kept)
    origin = saddle.positions.ravel().copy()

    def term(positions):
        q = dq_dx @ (positions.ravel() - origin)
        damping = math.exp(-((q[k0] / width) ** 2))
        v = float(linear @ q + 0.5 * q @ quadratic @ q)
        dv_dq = damping * (linear + quadratic @ q)
        dv_dq[k0] += v * damping * (-2 * q[k0] / width**2)
        return damping * v, dv_dq @ dq_dx

    return AddedTerm(calc, term)


def perturb(work: Path, spec: str, summary, saddle, reactants, product, vibrations, samples):
    """The same initial conditions on GFN2-xTB with :func:`perturbed`'s random error near
    the top (``spec`` = ``EPS:SEED`` or ``EPS:SEED:BELOW_CM1``): is an excess of direct
    trajectories what any error of a network's size does, or does it need one of one sign?"""
    from ase import units

    import ase_al
    from ase_al.samplers.modes import check_barrier_top, frequencies_along_modes

    parts = spec.split(":")
    eps, seed = float(parts[0]), int(parts[1])
    below = float(parts[2]) if len(parts) > 2 else None
    n = summary["n_trajectories"]
    direct = reference_outcomes(work / "GFN2-xTB", n, reactants, product)
    surface = perturbed(ase_al.methods("GFN2-xTB"), saddle, vibrations, eps, seed, 1.0, below)
    folder = (
        work
        / "barrier_top"
        / (f"perturbed_{eps:g}_{seed}" + ("" if below is None else f"_below_{below:g}"))
    )
    t0 = time.perf_counter()
    outcome = outcomes_on(surface, folder, samples, summary, reactants, product)
    labelled = labelled_samples(work, samples)
    # the error itself over the initial conditions: GFN2-xTB's forces are in ``labelled``,
    # so the perturbation alone is evaluated (on a zero surface) for its size
    zero = perturbed(_Zero(), saddle, vibrations, eps, seed, 1.0, below)
    errors_f, errors_e = [], []
    for atoms in samples:
        probe = atoms.copy()
        probe.calc = zero
        errors_f.append(probe.get_forces().ravel())
        errors_e.append(probe.get_potential_energy())
    kcal_mol = units.kcal / units.mol
    reference_cm1 = np.abs(vibrations.frequencies)
    along = np.abs(frequencies_along_modes(surface, saddle, vibrations))
    real = vibrations.frequencies > 0
    if below is not None:  # the modes perturbed
        real &= vibrations.frequencies < below
    measured = check_barrier_top(surface, labelled, saddle, vibrations, 300.0, 0.1)
    row = {
        "eps": eps,
        "seed": seed,
        "below_cm1": below,
        "force_error_rms_eV_A": float(np.sqrt(np.mean(np.square(errors_f)))),
        "energy_error_sd_kcal_mol": float(np.std(errors_e) / kcal_mol),
        "frequency_error_rms_percent": float(
            100 * np.sqrt(np.mean((along[real] / reference_cm1[real] - 1) ** 2))
        ),
        "top_shift_in_widths": measured.shift / measured.width,
        **compared(outcome, direct),
        "wall_s_this_call": time.perf_counter() - t0,
    }
    p = row["against_gfn2_xtb"]
    print(
        f"random error eps {eps:g}"
        + ("" if below is None else f" below {below:g} cm-1")
        + f" (seed {seed}; forces {row['force_error_rms_eV_A']:.3f} eV/Å "
        f"RMS, energies {row['energy_error_sd_kcal_mol']:.2f} kcal/mol SD, frequencies "
        f"{row['frequency_error_rms_percent']:.1f} % RMS, top {row['top_shift_in_widths']:+.3f} "
        f"widths): {row['direct']} direct (GFN2-xTB {direct['direct']}; here only "
        f"{p['direct_on_the_learned_only']}, on GFN2-xTB only "
        f"{p['direct_on_the_reference_only']}), gap {row['gap_mean_fs']:.2f} ± "
        f"{row['gap_error_fs']:.2f} fs",
        flush=True,
    )
    return row


def tilted(calc, tau: float, r0: float, s: float, bonds=((2, 3), (4, 5))):
    """``calc`` with a small step down toward the product just past the top: V =
    τ·s·(1 + erf((r - r0)/s))/2 with r the mean length of the forming ``bonds`` (Å), so a
    force τ/√π·exp(-((r - r0)/s)²) (eV/Å) pushes r shorter near r0 and the product side lies
    τ·s lower (an ASE calculator). Where r0 is a few s short of the saddle point's r, the top
    is left alone: how much does a network's slope just past the top decide recrossing?"""
    import math

    def term(x):
        dr = np.zeros_like(x)
        r = 0.0
        for i, j in bonds:
            d = x[i] - x[j]
            length = float(np.linalg.norm(d))
            r += length / len(bonds)
            dr[i] += d / length / len(bonds)
            dr[j] -= d / length / len(bonds)
        z = (r - r0) / s
        v = tau * s * (1 + math.erf(z)) / 2
        return v, tau * math.exp(-(z**2)) / math.sqrt(math.pi) * dr

    return AddedTerm(calc, term)


def tilt(work: Path, spec: str, summary, saddle, reactants, product, vibrations, samples):
    """The same initial conditions on GFN2-xTB with :func:`tilted`'s step (``spec`` =
    ``TAU:R0:S``, eV/Å, Å, Å)."""
    from ase import units

    import ase_al
    from ase_al.samplers.modes import check_barrier_top

    tau, r0, s = (float(x) for x in spec.split(":"))
    n = summary["n_trajectories"]
    direct = reference_outcomes(work / "GFN2-xTB", n, reactants, product)
    surface = tilted(ase_al.methods("GFN2-xTB"), tau, r0, s)
    folder = work / "barrier_top" / f"tilted_{tau:g}_{r0:g}_{s:g}"
    t0 = time.perf_counter()
    outcome = outcomes_on(surface, folder, samples, summary, reactants, product)
    measured = check_barrier_top(
        surface, labelled_samples(work, samples), saddle, vibrations, 300.0, 0.1
    )
    r_saddle = (saddle.get_distance(2, 3) + saddle.get_distance(4, 5)) / 2
    row = {
        "tau_eV_A": tau,
        "r0_A": r0,
        "s_A": s,
        "saddle_r_A": r_saddle,
        "step_kcal_mol": tau * s / (units.kcal / units.mol),
        "top_shift_in_widths": measured.shift / measured.width,
        **compared(outcome, direct),
        "wall_s_this_call": time.perf_counter() - t0,
    }
    p = row["against_gfn2_xtb"]
    print(
        f"step of {row['step_kcal_mol']:.3f} kcal/mol down at r = {r0:g} ± {s:g} Å (saddle "
        f"{r_saddle:.3f}; force up to {tau / 1.7725:.3f} eV/Å; top "
        f"{row['top_shift_in_widths']:+.3f} widths): {row['direct']} direct (GFN2-xTB "
        f"{direct['direct']}; here only {p['direct_on_the_learned_only']}, on GFN2-xTB only "
        f"{p['direct_on_the_reference_only']}), gap {row['gap_mean_fs']:.2f} ± "
        f"{row['gap_error_fs']:.2f} fs",
        flush=True,
    )
    return row


class _Zero:
    """A surface that is zero everywhere (for measuring a perturbation alone)."""

    def get_potential_energy(self, atoms=None):
        return 0.0

    def get_forces(self, atoms=None):

        return np.zeros((len(atoms), 3))


def forming(frames) -> np.ndarray:
    """Å: r, the mean length of the two bonds the Diels-Alder reaction forms, per frame."""
    return np.array([(a.get_distance(2, 3) + a.get_distance(4, 5)) / 2 for a in frames])


def toward_longer(atoms) -> np.ndarray:
    """dr/dx (N, 3): r the mean length of the two bonds the Diels-Alder reaction forms."""
    x, gradient = atoms.positions, np.zeros((len(atoms), 3))
    for i, j in ((2, 3), (4, 5)):
        unit = (x[i] - x[j]) / np.linalg.norm(x[i] - x[j])
        gradient[i] += unit / 2
        gradient[j] -= unit / 2
    return gradient


def force_differences(predicted, frames) -> np.ndarray:
    """eV/Å, per frame: the predicted minus the frame's own force along r, positive toward
    the product (r shorter)."""
    return np.array(
        [
            float(np.sum((np.reshape(f, (-1, 3)) - a.get_forces()) * -toward_longer(a)))
            for f, a in zip(predicted, frames, strict=True)
        ]
    )


def mean_and_error(values) -> tuple[float, float]:
    """The mean of ``values`` and its standard error (frames taken as independent)."""
    values = np.asarray(values, float)
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))


def force_toward_product(predicted, frames) -> tuple[float, float]:
    """Mean and standard error (eV/Å) of :func:`force_differences`."""
    return mean_and_error(force_differences(predicted, frames))


def error_summary(values) -> dict:
    """JSON-ready: how many force errors (eV/Å), their mean and its standard error."""
    mean, error = mean_and_error(values)
    return {"n_frames": len(values), "mean_eV_A": mean, "error_eV_A": error}


def aligned(atoms, target) -> np.ndarray:
    """``atoms``' positions (Å) with its centre of mass and orientation brought onto
    ``target``'s: the rotation that minimises the mass-weighted squared deviation (Kabsch)."""
    m = target.get_masses()[:, None]
    x = atoms.positions - (m * atoms.positions).sum(0) / m.sum()
    centre = (m * target.positions).sum(0) / m.sum()
    y = target.positions - centre
    u, _s, vt = np.linalg.svd((m * x).T @ y)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    return x @ rotation + centre


def mode_amplitudes(frames, saddle, vibrations, temperature: float = 300.0) -> np.ndarray:
    """(F, n_vib): each frame's displacement from ``saddle`` (aligned, :func:`aligned`) along
    each of the saddle point's normal modes, q_k = e_k·M^1/2 Δx, in units of the mode's
    Wigner width at ``temperature`` K."""
    from ase_al.samplers.modes import wigner_widths

    sqrt_m = np.repeat(saddle.get_masses() ** 0.5, 3)
    displacement = np.array([(aligned(a, saddle) - saddle.positions).ravel() for a in frames])
    q = (displacement * sqrt_m) @ vibrations.mass_weighted_modes.T
    return q / wigner_widths(vibrations, temperature)[None, :]


def decomposed(error, terms: dict, trajectory) -> dict:
    """Least squares: error = a + Σ b_k·term_k over frames (error in eV/Å; ``terms``: name ->
    a value per frame), with standard errors robust to the frames of one trajectory being
    correlated (clustered by ``trajectory``). With r - r‡, the soft-mode energy, the
    reference's own force along r and the outcome as terms, the outcome's coefficient is
    what recrossing adds at the same values of the others, and the reference force's is
    how much of that force the network misses (negative: it follows the reference's force
    along r only in part)."""
    names = ["1", *terms]
    x = np.column_stack([np.ones(len(error))] + [np.asarray(v, float) for v in terms.values()])
    if len(error) <= x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        return {}
    bread = np.linalg.inv(x.T @ x)
    coefficients = bread @ x.T @ error
    residual = error - x @ coefficients
    meat = np.zeros((x.shape[1], x.shape[1]))
    for t in np.unique(trajectory):
        score = x[trajectory == t].T @ residual[trajectory == t]
        meat += np.outer(score, score)
    errors = np.sqrt(np.diag(bread @ meat @ bread))
    return {
        "terms": names,
        "coefficients": coefficients.round(5).tolist(),
        "errors": errors.round(5).tolist(),
        "r_squared": round(float(1 - residual.var() / np.var(error)), 4),
        "n_frames": len(error),
        "n_trajectories": len(np.unique(trajectory)),
    }


#: cm⁻¹: the saddle point's transverse modes below this are reported by :func:`paths`
SOFT_CM1 = 500.0


def hot(work: Path, temperatures, wanted, saddle, vibrations) -> list[dict]:
    """Where each wanted network puts the barrier top for transition-state samples drawn at
    each of ``temperatures`` (K; 100 each, seed 11, labelled once with GFN2-xTB and kept in
    ``DIR/barrier_top/hot_<T>_forces.npy``): the shift by
    :func:`ase_al.samplers.modes.check_barrier_top` (widths at 300 K) and the force error
    along the forming bonds (:func:`force_toward_product`). Hotter transverse modes are
    where slow trajectories linger."""
    import ase_al
    from ase_al.samplers import transition_state_sampling
    from ase_al.samplers.modes import check_barrier_top

    run = ase_al.ALRun(work / "al")
    sets = {
        t: labelled_samples(
            work,
            transition_state_sampling(saddle, vibrations, 100, t, seed=11),
            f"hot_{t:g}_forces",
        )
        for t in temperatures
    }
    rows = []
    for k, _entry, main in main_networks(run, wanted):
        for t, labelled in sets.items():
            check = check_barrier_top(main, labelled, saddle, vibrations, 300.0, 0.1)
            predicted = main.predict(labelled, forces=True)["forces"]
            mean, error = force_toward_product(predicted, labelled)
            rows.append(
                {
                    "iteration": k,
                    "temperature": t,
                    "shift": check.shift,
                    "shift_error": check.error,
                    "force_toward_product_eV_A": mean,
                    "force_toward_product_error_eV_A": error,
                }
            )
            print(
                f"iteration {k:2d}, samples at {t:5.0f} K: top at {check.shift:+.4f} ± "
                f"{check.error:.4f} Å·amu^1/2, force along r toward the product "
                f"{1000 * mean:+.0f} ± {1000 * error:.0f} meV/Å",
                flush=True,
            )
    return rows


def main_networks(run, wanted):
    """(iteration, its history entry, its main network) for each finished iteration of
    ``run`` in ``wanted`` (all when it is empty)."""
    for entry in run.history:
        k = entry["iteration"]
        if not wanted or k in wanted:
            yield k, entry, run.model(iteration=k).members[0]


def networks(work: Path, wanted, saddle, vibrations, samples):
    import ase_al
    from ase_al.samplers.modes import check_barrier_top

    labelled = labelled_samples(work, samples)
    run = ase_al.ALRun(work / "al")
    rows = []
    for k, entry, main in main_networks(run, wanted):
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


def paths(
    work: Path, wanted, summary, saddle, reactants, product, vibrations, samples
) -> list[dict]:
    """Each wanted iteration's main network against GFN2-xTB from the same initial
    conditions, half by half: the mean length r of the two forming C–C bonds (Å) on the
    network minus on GFN2-xTB at 2–40 fs, averaged within groups named
    ``<GFN2-xTB's trajectory>/<the network's>/<where the half ends on GFN2-xTB>-><on the
    network>`` (``direct`` or ``recrossing``; ``reactant``, ``product`` or ``other``).
    Which way, and how early, the network's trajectories part from GFN2-xTB's, say where
    its surface is off. The network's halves are kept in ``DIR/barrier_top/network_<k>/``.
    Also the network's force along r (toward the product, i.e. r shorter, positive) minus
    GFN2-xTB's over GFN2-xTB's own frames near the top (2.2 < r < 2.45 Å, the first 40 fs),
    apart for its direct and recrossing trajectories and for the first 5 fs and later (the
    later frames also by r and by the asynchrony |r₂₃ − r₄₅|). And the later frames'
    amplitudes in the saddle point's transverse modes below :data:`SOFT_CM1`
    (:func:`mode_amplitudes`, in 300 K Wigner widths): their RMS for either outcome, the
    correlation of the network's force error with each amplitude's square, and the force
    error by thirds of the potential energy those modes hold (Σ q²/2, in kT at 300 K
    harmonically), and that error decomposed by :func:`decomposed` into r, the soft-mode
    energy and the outcome."""
    import ase_al

    n = summary["n_trajectories"]
    on_gfn2 = read_halves(work / "GFN2-xTB", n)
    reference = judged(on_gfn2, reactants, product)["labels"]
    r_on_gfn2 = [forming(half) for half in on_gfn2]
    run = ase_al.ALRun(work / "al")
    times_fs = [2, 5, 10, 15, 20, 30, 40]  # frame k is at k + 1 fs

    def is_direct(labels, k):
        return {labels[2 * k], labels[2 * k + 1]} == {"reactant", "product"}

    # GFN2-xTB's own frames near the top (2.2 < r < 2.45 Å, first 40 fs), each once in
    # ``frames``, grouped (indices) by its outcome and by time (up to 5 fs: where the initial
    # conditions put them; later: lingering there)
    frames: list = []
    near_top: dict[str, list] = {}
    trajectory_of: dict[str, list] = {}  # the later frames' trajectories, by outcome
    r_bins = np.array([2.2, 2.3, 2.35, 2.4, 2.45])  # Å
    a_bins = np.array([0.0, 0.1, 0.2, 0.3])  # Å, the last open-ended
    for t in range(n):
        kind = "direct" if is_direct(reference, t) else "recrossing"
        for h in (2 * t, 2 * t + 1):
            for i, (atoms, r) in enumerate(zip(on_gfn2[h][:40], r_on_gfn2[h][:40], strict=True)):
                if not 2.2 < r < 2.45:
                    continue
                index = len(frames)
                frames.append(atoms)
                when = "up to 5 fs" if i < 5 else "5-40 fs"
                near_top.setdefault(f"{kind}, {when}", []).append(index)
                if i >= 5:  # the later frames also by r and by the asynchrony |r23 - r45|
                    trajectory_of.setdefault(kind, []).append(t)
                    low = min(r_bins[r_bins <= r].max(), r_bins[-2])
                    near_top.setdefault(f"{kind}, 5-40 fs, r {low:.2f}+", []).append(index)
                    asynchrony = abs(atoms.get_distance(2, 3) - atoms.get_distance(4, 5))
                    low = a_bins[a_bins <= asynchrony].max()
                    near_top.setdefault(f"{kind}, 5-40 fs, |r23-r45| {low:.1f}+", []).append(index)
    # the later frames' transverse soft-mode amplitudes (300 K widths), both outcomes
    later = {
        kind: near_top[f"{kind}, 5-40 fs"]
        for kind in ("direct", "recrossing")
        if f"{kind}, 5-40 fs" in near_top
    }
    frequencies = np.asarray(vibrations.frequencies, float)
    soft = np.flatnonzero((frequencies > 0) & (frequencies < SOFT_CM1))
    amplitudes = {
        kind: mode_amplitudes([frames[i] for i in indices], saddle, vibrations)[:, soft]
        for kind, indices in later.items()
    }
    energy = {kind: 0.5 * np.sum(q**2, axis=1) for kind, q in amplitudes.items()}
    thirds = np.quantile(np.concatenate(list(energy.values())), [1 / 3, 2 / 3])
    soft_modes = [
        {
            "cm1": round(float(frequencies[m]), 1),
            **{
                f"rms_amplitude_{kind}": round(float(np.sqrt(np.mean(q[:, i] ** 2))), 3)
                for kind, q in amplitudes.items()
            },
        }
        for i, m in enumerate(soft)
    ]
    print("GFN2-xTB's frames near the top after 5 fs, RMS amplitude (300 K widths):")
    for mode in soft_modes:
        print(
            f"  {mode['cm1']:6.0f} cm-1: direct {mode.get('rms_amplitude_direct', np.nan):.2f}, "
            f"recrossing {mode.get('rms_amplitude_recrossing', np.nan):.2f}"
        )
    # the later frames in one list (direct, then recrossing) and what the fit takes of them
    later_indices = np.concatenate([later[kind] for kind in later]).astype(int) if later else []
    if later:
        later_frames = [frames[i] for i in later_indices]
        terms = {
            "(r - r‡)/Å": forming(later_frames) - forming([saddle])[0],
            "soft-mode energy/kT": np.concatenate([energy[kind] for kind in later]),
            "GFN2-xTB's force along r/(eV/Å)": [
                float(np.sum(a.get_forces() * -toward_longer(a))) for a in later_frames
            ],
            "recrossing": np.concatenate(
                [np.full(len(later[kind]), kind == "recrossing") for kind in later]
            ),
        }
        clusters = np.concatenate([trajectory_of[kind] for kind in later])
    rows = []
    for k, _entry, main in main_networks(run, wanted):
        # the network's force error along r at every frame near the top, predicted once
        all_differences = force_differences(main.predict(frames, forces=True)["forces"], frames)
        by_energy: dict[str, dict] = {}
        correlation, fit = [], {}
        if later:
            differences = all_differences[later_indices]
            squares = np.concatenate([amplitudes[kind] ** 2 for kind in later])
            correlation = [
                round(float(np.corrcoef(squares[:, i], differences)[0, 1]), 3)
                for i in range(len(soft))
            ]
            fit = decomposed(differences, terms, clusters)
            for kind, indices in later.items():
                mine, third = all_differences[indices], np.digitize(energy[kind], thirds)
                for b, name in enumerate(("low", "middle", "high")):
                    chosen = mine[third == b]
                    if len(chosen) > 1:
                        by_energy[f"{kind}, soft-mode energy {name} third"] = error_summary(chosen)
        along_r = {
            key: error_summary(all_differences[indices])
            for key, indices in sorted(near_top.items())
        }
        folder = work / "barrier_top" / f"network_{k}"
        halves = propagated(main, folder, samples, summary, workers=False)
        learned = judged(halves, reactants, product)["labels"]
        groups: dict[str, list] = {}
        for t in range(n):
            for h in range(2):
                key = "/".join(
                    (
                        "direct" if is_direct(reference, t) else "recrossing",
                        "direct" if is_direct(learned, t) else "recrossing",
                        f"{reference[2 * t + h]}->{learned[2 * t + h]}",
                    )
                )
                difference = forming(halves[2 * t + h]) - r_on_gfn2[2 * t + h]
                groups.setdefault(key, []).append([difference[i - 1] for i in times_fs])
        row = {
            "iteration": k,
            "direct": sum(is_direct(learned, t) for t in range(n)),
            "times_fs": times_fs,
            "force_error_toward_the_product_near_the_top": along_r,
            "soft_modes": [
                {**mode, "correlation_force_error_with_square": c}
                for mode, c in zip(soft_modes, correlation, strict=False)
            ],
            "soft_mode_energy_thirds_kT": thirds.round(3).tolist(),
            "force_error_by_soft_mode_energy": by_energy,
            "force_error_decomposed": fit,
            "mean_r_difference_A": {
                key: {"n_halves": len(v), "mean": np.mean(v, axis=0).round(4).tolist()}
                for key, v in sorted(groups.items())
            },
        }
        rows.append(row)
        print(f"iteration {k}: force on r toward the product, network - GFN2-xTB, near the top:")
        for key, v in along_r.items():
            print(
                f"  GFN2-xTB's {key:42s} ({v['n_frames']:4d} frames) "
                f"{1000 * v['mean_eV_A']:+7.1f} ± {1000 * v['error_eV_A']:.1f} meV/Å"
            )
        print(
            f"iteration {k}: correlation of that force error (after 5 fs) with each soft "
            "mode's amplitude squared: "
            + ", ".join(
                f"{m['cm1']:.0f} cm-1 {c:+.2f}"
                for m, c in zip(soft_modes, correlation, strict=False)
            )
        )
        print(
            f"iteration {k}: by the soft modes' potential energy (thirds at {thirds.round(2)} kT):"
        )
        for key, v in by_energy.items():
            print(
                f"  {key:42s} ({v['n_frames']:4d} frames) "
                f"{1000 * v['mean_eV_A']:+7.1f} ± {1000 * v['error_eV_A']:.1f} meV/Å"
            )
        if fit:
            print(
                f"iteration {k}: that force error (meV/Å) = "
                + " + ".join(
                    f"{1000 * v:+.1f} (± {1000 * e:.1f}) {name}"
                    for name, v, e in zip(
                        fit["terms"], fit["coefficients"], fit["errors"], strict=True
                    )
                )
            )
        print(f"iteration {k}: {row['direct']} direct; r on the network - r on GFN2-xTB (Å) at")
        print(f"{'':56s}" + "".join(f"{t:>8d}" for t in times_fs) + " fs")
        for key, v in row["mean_r_difference_A"].items():
            print(
                f"  {key:42s} ({v['n_halves']:3d} halves)"
                + "".join(f"{x:+8.3f}" for x in v["mean"]),
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
        "--hot",
        default="",
        help="T1,T2,...: the --iterations' networks' tops for transition-state samples at "
        "these temperatures (K; results/barrier_top_diels_alder_hot.json)",
    )
    parser.add_argument(
        "--paths",
        action="store_true",
        help="the --iterations' networks' trajectories against GFN2-xTB's, pair by pair "
        "(results/barrier_top_diels_alder_paths.json)",
    )
    parser.add_argument(
        "--soften", default="", help="MODE:CM1,...: the saddle point's modes softened near the top"
    )
    parser.add_argument(
        "--perturb",
        default="",
        help="EPS:SEED[:BELOW_CM1],...: a random error of relative size EPS near the top, "
        "the top kept (alone; results/barrier_top_diels_alder_perturbed.json)",
    )
    parser.add_argument(
        "--tilt",
        default="",
        help="TAU:R0:S,...: a step down toward the product just past the top (eV/Å, Å, Å; "
        "with --perturb's file)",
    )
    parser.add_argument("--trajectories", type=int, default=100, help="N, as the example's")
    parser.add_argument("--fs", type=float, default=100.0, help="fs each way, as the example's")
    args = parser.parse_args()
    work = args.workdir
    summary, saddle, reactants, product, vibrations, samples = initial_conditions(
        work, args.trajectories, args.fs
    )
    if args.hot:  # the networks' tops for hotter samples, in their own file
        temperatures = [float(t) for t in args.hot.split(",") if t.strip()]
        rows = hot(work, temperatures, iterations(args), saddle, vibrations)
        write_result("barrier_top_diels_alder_hot", {"workdir": str(work), "networks": rows})
        return
    if args.paths:  # the networks' trajectories against GFN2-xTB's, in their own file
        rows = paths(
            work, iterations(args), summary, saddle, reactants, product, vibrations, samples
        )
        write_result("barrier_top_diels_alder_paths", {"workdir": str(work), "networks": rows})
        return
    if args.networks_only:  # a run going on: its networks, the sensitivity left as it is
        rows = networks(work, iterations(args), saddle, vibrations, samples)
        write_result("barrier_top_diels_alder_networks", {"workdir": str(work), "networks": rows})
        return
    if args.perturb or args.tilt:  # the random errors and steps alone, in their own file
        rows = [
            perturb(work, spec, summary, saddle, reactants, product, vibrations, samples)
            for spec in args.perturb.split(",")
            if spec.strip()
        ]
        steps = [
            tilt(work, spec, summary, saddle, reactants, product, vibrations, samples)
            for spec in args.tilt.split(",")
            if spec.strip()
        ]
        soft = [
            soften(work, spec, summary, saddle, reactants, product, vibrations, samples)
            for spec in args.soften.split(",")
            if spec.strip()
        ]
        write_result(
            "barrier_top_diels_alder_perturbed",
            {
                "task": "ethene + 1,3-butadiene Diels-Alder, GFN2-xTB with a random error "
                "near the top (the top kept): direct fraction",
                "workdir": str(work),
                "n_trajectories": summary["n_trajectories"],
                "perturbed": rows,
                "tilted": steps,
                "softened": soft,
            },
        )
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
