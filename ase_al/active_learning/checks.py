"""Overconfidence checks: is the uncertainty right where the model says it is certain?

Each iteration a small, seeded random sample of the structures the sampler passed as certain
(``Uncertainty.check_fraction`` of the trajectories, at least ``Uncertainty.min_checks``) is
labelled as well, stored with ``source="check"``; with ``Sampling.relax_starting_points``,
so is the end of each relaxation on the model that is certain (the model's own minimum or
saddle point, ``sampled_by="relaxation end"``). The iteration's model did not see them (it
was trained before they were drawn); later iterations train on them like any label. With the
structures selected as uncertain (when they are labelled) they measure:

- the true energy error of certain and of uncertain structures (RMSE, eV);
- the fraction of certain structures whose error exceeds the target (``target_error``, or
  the threshold without one);
- the Spearman rank correlation of uncertainty with true error (1: the uncertainty orders
  the structures as their errors do);
- with ``target_error``: whether the certain structures meet it, at ``confidence``: the
  one-sided upper confidence bound on their RMSE, √(n·RMSE²/χ²₁₋c(n)), is at most the
  target (errors taken as normal with mean 0).

The per-structure (uncertainty, error) pairs are kept in the iteration's summary
(``calibration``), so :meth:`~ase_al.ALRun.calibration` and ``calibration.png`` can be
redrawn from ``state.json``. Multistate models: everything per state.

Threshold rule (with ``target_error`` only), both ways, for the iterations that follow, and
the log says so:

- when more than a quarter (``TOO_OFTEN``) of the checked certain structures have an error
  above the target, the threshold (per state) is multiplied by ``LOWER``: the model is
  overconfident;
- when none of them does and their RMSE bound meets the target in two iterations in a row
  at the same threshold, yet the run goes on (the sampler still stops enough trajectories
  as uncertain), it is divided by ``LOWER``, up to its ceiling (the threshold the run
  started from: the measured m+3MAD or the one given). Without this, a threshold lowered
  while the models were poor stays below the pair's own disagreement on structures they fit
  well, every trajectory stops in its first femtoseconds, and the learner labels the
  starting region for ever. Two passes, not one: a few dozen checks all within the target
  is weak evidence, and a Diels-Alder run whose threshold was raised on each single pass
  went from 0.07 to 0.2 eV in three iterations, the trajectories stopped as uncertain fell
  from 83 to 40 in 100, and the ethene-butadiene complex slid into a spurious well 6
  kcal/mol deep on the next model.

After each iteration the learner also measures how far the model's own stationary points
(each starting point relaxed on it) lie from the reference's (:func:`relaxation_errors`),
and :meth:`~ase_al.ALRun.validated_iteration` names the latest iteration whose model passed
that held-out test.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase import Atoms, units

from ase_al.active_learning.selection import format_threshold
from ase_al.calculators.multistate import multistate_labels
from ase_al.io import key_value_pairs

log = logging.getLogger("ase_al")

#: factor applied to the threshold when certain structures are too often wrong
LOWER = 0.7
#: "too often": the fraction of checked certain structures above the target
TOO_OFTEN = 0.25
#: eV per kcal/mol
KCAL_MOL = units.kcal / units.mol


def n_checks(n_trajectories: int, fraction: float, minimum: int) -> int:
    """How many certain structures to check: ``fraction`` of the trajectories, at least
    ``minimum`` (0 when ``fraction`` is 0)."""
    if fraction <= 0:
        return 0
    return max(int(minimum), int(np.ceil(fraction * n_trajectories)))


def draw(certain, n: int, seed: int, iteration: int) -> list[Atoms]:
    """``n`` of the ``certain`` frames (a :class:`~ase_al.samplers.stop.CertainFrames`),
    chosen with a generator seeded by (``seed``, ``iteration``) alone, uids
    ``check<k>-<index>``."""
    if n <= 0 or certain is None or len(certain) == 0:
        return []
    rng = np.random.default_rng([int(seed), int(iteration), 4242])
    keep = np.sort(rng.choice(len(certain), min(n, len(certain)), replace=False))
    chosen = certain.take(keep)
    for index, atoms in enumerate(chosen):
        atoms.info["uid"] = f"check{iteration:03d}-{index:06d}"
    return chosen


def errors(model, images: list[Atoms], n_states: int | None):
    """(uncertainty, |E_model − E_reference|) of labelled ``images``, eV: (P,) each, or
    (P, n_states) for a multistate model."""
    if not images:
        shape = (0,) if n_states is None else (0, n_states)
        return np.zeros(shape), np.zeros(shape)
    result = model.predict(images, forces=False)
    if n_states is None:
        reference = np.array([a.get_potential_energy() for a in images])
        return np.asarray(result["energy_uncertainty"]), np.abs(result["energy"] - reference)
    reference = multistate_labels(images)[0][:, :n_states]
    return (
        np.asarray(result["state_uncertainties"]),
        np.abs(result["state_energies"] - reference),
    )


def spearman(u: np.ndarray, e: np.ndarray) -> float | None:
    """Spearman rank correlation of uncertainty with error (None when undefined)."""
    from scipy.stats import spearmanr

    if len(u) < 3 or np.ptp(u) == 0 or np.ptp(e) == 0:
        return None
    return float(spearmanr(u, e).statistic)


def upper_rmse(e: np.ndarray, confidence: float) -> float:
    """One-sided upper ``confidence`` bound on the RMSE of errors ``e`` (mean 0, normal)."""
    from scipy.stats import chi2

    n = len(e)
    return float(np.sqrt(np.sum(np.square(e)) / chi2.ppf(1.0 - confidence, n)))


def check_bounds(e_check: np.ndarray, confidence: float) -> list[float]:
    """Per state (one entry for a single state): the upper ``confidence`` bound on the RMSE of
    the checked certain structures (inf without checks)."""
    columns = 1 if e_check.ndim == 1 else e_check.shape[1]
    if not len(e_check):
        return [np.inf] * columns
    return [
        upper_rmse(e_check if e_check.ndim == 1 else e_check[:, s], confidence)
        for s in range(columns)
    ]


def meets_target(e_check: np.ndarray, target: float, confidence: float) -> bool:
    """Whether the checked certain structures meet ``target`` (eV) in every state."""
    return bool(len(e_check)) and max(check_bounds(e_check, confidence)) <= target


def summarise(u_check, e_check, u_sel, e_sel, target, threshold, confidence) -> dict:
    """The iteration's check statistics (per state as lists for a multistate model) and the
    calibration data. ``target``: ``target_error`` (eV) or None (then the threshold)."""
    bar = np.broadcast_to(
        np.asarray(threshold if target is None else target, float), u_check.shape[1:]
    )
    u_all = np.concatenate([u_check, u_sel])
    e_all = np.concatenate([e_check, e_sel])
    columns = 1 if u_check.ndim == 1 else u_check.shape[1]

    def per_state(function):
        values = [function(s) for s in range(columns)]
        return values[0] if u_check.ndim == 1 else values

    def column(a, s):
        return a if a.ndim == 1 else a[:, s]

    def rmse(a, s):
        return float(np.sqrt(np.mean(column(a, s) ** 2))) if len(a) else None

    summary = {
        "n_checks": len(u_check),
        "check_rmse": per_state(lambda s: rmse(e_check, s)),
        "uncertain_rmse": per_state(lambda s: rmse(e_sel, s)),
        "over_target": per_state(
            lambda s: (
                float(np.mean(column(e_check, s) > np.atleast_1d(bar)[s])) if len(e_check) else None
            )
        ),
        "spearman": per_state(lambda s: spearman(column(u_all, s), column(e_all, s))),
        "calibration": {
            "uncertainty": u_all.tolist(),
            "error": e_all.tolist(),
            "certain": [True] * len(u_check) + [False] * len(u_sel),
        },
    }
    if target is not None:
        bounds = check_bounds(e_check, confidence)
        summary["check_rmse_upper"] = bounds[0] if u_check.ndim == 1 else bounds
        summary["meets_target"] = meets_target(e_check, target, confidence)
    return summary


def check_and_label(
    learner, k, pair, threshold, sampled, selected, check_queue, barrier_queue=(), points=()
):
    """Label iteration ``k``'s overconfidence checks and barrier-top samples, decide
    convergence, label the selected structures unless converged; returns (converged,
    failures, the summary)."""
    target = learner.uncertainty.target_error
    failures = 0
    if check_queue:
        failures += learner._label_queue(check_queue, iteration=k, source="check")
    barrier_checks = []
    if barrier_queue:
        failures += learner._label_queue(barrier_queue, iteration=k, source="barrier check")
        barrier_checks = learner.stage.barrier_checks(
            pair, points, learner.labelled(iteration=k, source="barrier check")
        )
    checked_images = learner.labelled(iteration=k, source="check")
    u_check, e_check = errors(pair, checked_images, learner.n_states)
    ends = relaxation_ends(checked_images, u_check, e_check)
    confidence = learner.uncertainty.confidence
    relaxed = sampled.get("relaxations", [])
    few = (
        sampled["n_uncertain"] < learner.selection.min_new_points
        and not any(r["found_uncertain"] for r in relaxed)
        and not any(c["n_off"] for c in sampled.get("frequency_checks", []))
        and not any(c["off"] for c in barrier_checks)
    )
    converged = few and (target is None or meets_target(e_check, target, confidence))
    u_sel, e_sel = u_check[:0], e_check[:0]
    if not converged:
        failures += learner._label_queue(selected, iteration=k, source="sampler")
        u_sel, e_sel = errors(
            pair, learner.labelled(iteration=k, source="sampler"), learner.n_states
        )
    summary = summarise(u_check, e_check, u_sel, e_sel, target, threshold, confidence)
    if few and not converged:
        log.info(
            "fewer than %d uncertain structures, but the checked certain structures do not "
            "meet the target error %.3g eV (RMSE upper bound %s eV): going on",
            learner.selection.min_new_points,
            target,
            _fmt(summary["check_rmse_upper"], ".5f"),
        )
    if summary["n_checks"]:
        log.info(
            "checks: %d certain structures, energy RMSE %s eV (uncertain: %s eV), "
            "%s above the %s, Spearman(uncertainty, error) %s",
            summary["n_checks"],
            _fmt(summary["check_rmse"], ".5f"),
            _fmt(summary["uncertain_rmse"], ".5f"),
            _fmt(summary["over_target"], ".0%"),
            "threshold" if target is None else "target error",
            _fmt(summary["spearman"], ".2f"),
        )
    summary["target_error"] = target
    if ends:
        summary["relaxation_ends"] = ends
    if barrier_checks:
        summary["barrier_checks"] = barrier_checks
    return converged, failures, summary


def _fmt(value, spec: str) -> str:
    """A statistic (a number, None, or one per state) as text."""
    if isinstance(value, list):
        return "[" + " ".join(_fmt(v, spec) for v in value) + "]"
    return "n/a" if value is None else format(value, spec)


def _passed(entry: dict | None, shape) -> np.ndarray:
    """Per state: whether the checks of ``entry`` (a history entry or an iteration's
    summary) met the target with none of them above it (all False without ``entry``)."""
    if entry is None or not entry.get("n_checks") or not entry.get("meets_target"):
        return np.zeros(shape, bool)
    return np.broadcast_to(np.asarray(entry["over_target"], float) == 0, shape)


def adjusted_threshold(
    threshold, summary: dict, target, converged: bool, ceiling=None, previous=None
):
    """The threshold for the next iterations (only with a ``target``), None when it stays.

    Lowered by :data:`LOWER` in the states whose checked certain structures exceed
    ``target`` more often than :data:`TOO_OFTEN`. Otherwise, when the run is not
    ``converged``, the checks meet the target (``summary["meets_target"]``) and none of them
    exceeds it in a state, and the same held for the ``previous`` iteration (its history
    entry) at the same threshold, raised there by 1/:data:`LOWER`, but not above ``ceiling``
    (eV, one or per state; None: no bound)."""
    if target is None or not summary["n_checks"]:
        return None
    over = np.atleast_1d(np.asarray(summary["over_target"], float))
    values = np.broadcast_to(np.asarray(threshold, float), over.shape).copy()
    if np.any(over > TOO_OFTEN):
        values[over > TOO_OFTEN] *= LOWER
        verb = "lowered"
        why = "%.0f %% of the checked certain structures exceed the target error" % (
            100 * np.max(over)
        )
    elif not converged and summary.get("meets_target") and np.any(over == 0):
        top = np.broadcast_to(np.inf if ceiling is None else np.asarray(ceiling, float), over.shape)
        same = previous is not None and np.allclose(
            np.broadcast_to(np.asarray(previous.get("threshold", np.nan), float), over.shape),
            values,
        )
        twice = (over == 0) & _passed(previous, over.shape) & same
        if not np.any(twice & (values < top)):
            if np.any((over == 0) & (values < top)):
                log.info(
                    "the checked certain structures meet the target error, none exceeds it: "
                    "the threshold is raised when the next iteration's do too"
                )
            return None
        raised = np.where(twice, np.minimum(values / LOWER, top), values)
        if np.all(raised <= values):  # at the ceiling
            return None
        values = np.maximum(raised, values)
        verb = "raised"
        why = (
            "the checked certain structures meet the target error, none exceeds it, "
            "two iterations in a row"
        )
    else:
        return None
    adjusted = float(values[0]) if np.ndim(threshold) == 0 else [float(v) for v in values]
    log.warning(
        "%s: threshold %s from %s to %s eV",
        why,
        verb,
        format_threshold(threshold),
        format_threshold(adjusted),
    )
    return adjusted


def reference_energy_at(atoms: Atoms, labelled: list[Atoms]) -> float | None:
    """The reference energy (eV) of the labelled structure at the geometry of ``atoms``
    (same atoms, every coordinate within 1e-6 Å), None when none is labelled there."""
    for image in labelled:
        if np.array_equal(image.numbers, atoms.numbers) and (
            np.abs(image.positions - atoms.positions).max() < 1e-6
        ):
            return float(image.get_potential_energy())
    return None


def relaxation_errors(folder, points, labelled: list[Atoms], start_energies) -> dict:
    """How far each starting point's relaxation on the iteration's model (``folder``'s
    ``relaxations/<k>.traj``) went from the reference: the model's energy change from the
    start to the end of the path minus the reference's,
    (E_model(end) − E_model(start)) − (E_ref(end) − E_ref(start)), eV, by starting point
    (a string key, as in ``state.json``); None where a reference energy is not known.

    The end is the model's own minimum or saddle point, where a user's optimisation on the
    model lands and a learned barrier or binding energy is read; it is labelled in the same
    iteration (as a check when certain, as an uncertain structure otherwise), after the
    model was trained, so this is a held-out test of the model's stationary points. A
    spurious well of a weakly bound complex, which a committee can agree on, shows here as
    its depth on the model plus its height on the reference. ``start_energies``: each
    point's reference energy (eV, None when unknown: then the labelled structure at the
    start's geometry is used, if any)."""
    from ase.io import read

    errors = {}
    for index, point in enumerate(points):
        path_file = Path(folder) / "relaxations" / f"{index:02d}.traj"
        if not path_file.exists():
            continue
        path = read(path_file, ":")
        start, end = path[0], path[-1]
        e_start = start_energies[index] if index < len(start_energies) else None
        if e_start is None:
            e_start = reference_energy_at(point.atoms, labelled)
        e_end = reference_energy_at(end, labelled)
        if e_start is None or e_end is None:
            errors[str(index)] = None
            continue
        model_change = end.info["model_energy"] - start.info["model_energy"]
        errors[str(index)] = float(model_change - (e_end - e_start))
    return errors


def validated(entry: dict, tolerance: float) -> bool:
    """Whether iteration ``entry`` (an :attr:`~ase_al.ALRun.history` entry) relaxed every
    starting point on its model without a hole and to within ``tolerance`` (eV) of the
    reference's energy change (:func:`relaxation_errors`)."""
    errors = entry.get("relaxation_errors") or {}
    if not errors or any(r.get("collapsed") for r in entry.get("relaxations", [])):
        return False
    return all(e is not None and abs(e) <= tolerance for e in errors.values())


def relaxation_ends(images: list[Atoms], u: np.ndarray, e: np.ndarray) -> list[dict]:
    """The checked ends of the relaxations on the model (``sampled_by="relaxation end"``)
    among the labelled checks ``images``: starting point, uncertainty and true energy error
    (eV) of each, by starting point (single-state runs only: relaxations need one surface)."""
    found = []
    for atoms, u_k, e_k in zip(images, u, e, strict=True):
        pairs = key_value_pairs(atoms)
        if pairs.get("sampled_by") == "relaxation end" and np.ndim(e_k) == 0:
            found.append(
                {
                    "starting_point": int(pairs["starting_point"]),
                    "uncertainty": float(u_k),
                    "error": float(e_k),
                }
            )
    return sorted(found, key=lambda end: end["starting_point"])


def adjusted_relaxation_thresholds(
    current: dict, ends: list[dict], threshold: float, target
) -> dict:
    """Each starting point's own threshold for its relaxation on the model, for the
    iterations that follow ({starting point: eV}; points not named use the run's threshold).

    A relaxation's end is the model's own minimum or saddle point, where barriers and binding
    energies are read; near a weakly bound complex the learned surface is flat, and a
    committee that disagrees by less than the run's threshold (set for the trajectories'
    frames) can still put the minimum in a well 2 kcal/mol too deep, a new one each
    iteration. So when a checked end's true error exceeds ``target`` (eV), that point's
    threshold becomes :data:`LOWER` × the smaller of its threshold and the end's own
    uncertainty, not below ``target``: the next relaxations label the uncertain part of the
    path to the wrong well, not only its end. When an end meets the target, the point's
    threshold is raised by 1/:data:`LOWER`, and dropped when it reaches the run's
    ``threshold``. Without a ``target`` nothing changes."""
    adjusted = {int(k): float(v) for k, v in current.items()}
    if target is None:
        return adjusted
    threshold = float(np.max(threshold))
    for end in ends:
        index = end["starting_point"]
        old = min(adjusted.get(index, threshold), threshold)
        if end["error"] > target:
            new = max(float(target), LOWER * min(old, end["uncertainty"]))
            if new < old:
                log.warning(
                    "the relaxation of starting structure %d on the model ended %.2f kcal/mol "
                    "off (uncertainty %.3g eV): its relaxation threshold lowered from %.3g to "
                    "%.3g eV",
                    index,
                    end["error"] / KCAL_MOL,
                    end["uncertainty"],
                    old,
                    new,
                )
                adjusted[index] = new
        elif index in adjusted:
            raised = old / LOWER
            if raised >= threshold:
                del adjusted[index]
            else:
                adjusted[index] = raised
    return adjusted


def plot_calibration(history: list[dict], path: str | Path) -> None:
    """Uncertainty vs true error (log-log) of the checked (certain) and labelled (uncertain)
    structures, the last iteration in colour, earlier ones grey; threshold and target lines."""
    from matplotlib.figure import Figure

    entries = [it for it in history if it.get("calibration", {}).get("uncertainty")]
    if not entries:
        return
    columns = np.asarray(entries[-1]["calibration"]["uncertainty"]).shape[1:] or (1,)
    fig = Figure(figsize=(4.2 * columns[0], 3.6))
    axes = np.atleast_1d(fig.subplots(1, columns[0]))
    for s, ax in enumerate(axes):
        for it in entries:
            data = it["calibration"]
            u = np.asarray(data["uncertainty"], float)
            e = np.asarray(data["error"], float)
            if u.ndim == 2:
                u, e = u[:, s], e[:, s]
            certain = np.asarray(data["certain"], bool)
            last = it is entries[-1]
            floor = 1e-6
            u, e = np.maximum(u, floor), np.maximum(e, floor)
            ax.loglog(
                u[certain],
                e[certain],
                "o",
                ms=4,
                alpha=0.9 if last else 0.3,
                color="tab:blue" if last else "0.7",
                label=f"checked certain (it. {it['iteration']})" if last else None,
            )
            ax.loglog(
                u[~certain],
                e[~certain],
                "^",
                ms=4,
                alpha=0.9 if last else 0.3,
                color="tab:orange" if last else "0.7",
                label=f"labelled uncertain (it. {it['iteration']})" if last else None,
            )
        threshold = np.atleast_1d(entries[-1]["threshold"])
        ax.axvline(
            threshold[min(s, len(threshold) - 1)], color="k", ls="--", lw=1, label="threshold"
        )
        if entries[-1].get("target_error") is not None:
            ax.axhline(entries[-1]["target_error"], color="tab:red", ls=":", lw=1, label="target")
        title = "calibration" if len(axes) == 1 else f"state {s}"
        rho = entries[-1].get("spearman")
        rho = rho[s] if isinstance(rho, list) else rho
        if rho is not None:
            title += f" (Spearman {rho:.2f})"
        ax.set(xlabel="uncertainty / eV", ylabel="|error| / eV", title=title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


__all__ = [
    "LOWER",
    "TOO_OFTEN",
    "adjusted_relaxation_thresholds",
    "adjusted_threshold",
    "check_and_label",
    "check_bounds",
    "draw",
    "errors",
    "meets_target",
    "n_checks",
    "plot_calibration",
    "reference_energy_at",
    "relaxation_ends",
    "relaxation_errors",
    "spearman",
    "summarise",
    "upper_rmse",
    "validated",
]
