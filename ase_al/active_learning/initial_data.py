"""The initial training set: Wigner batches grown by a learning-curve rule, or the user's
structures (imported when labelled, labelled with the reference otherwise)."""

from __future__ import annotations

import logging
import os

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from ase_al.active_learning.plots import plot_learning_curve
from ase_al.active_learning.settings import NOISE_FLOOR
from ase_al.active_learning.training import cross_validation_rmse
from ase_al.errors import check_same_atoms
from ase_al.files import read_traj, write_traj
from ase_al.io import read_row, write_row

log = logging.getLogger("ase_al")


def stop_reason(
    curve: list, n_points: int, batch: int, max_points: int, target: float | None
) -> str | None:
    """Why the initial data is complete, or None while it is not.

    ``curve``: [[N, cross-validation RMSE (eV)], ...]. In order: ``max_points`` reached; the
    last RMSE at or below ``target`` (eV; default :data:`NOISE_FLOOR`, 0.1 kcal/mol); with
    four points or more, a power law rmse = a·N^b fitted to the curve promising a gain from
    another ``batch`` smaller than the scatter of the curve about the fit (its residual
    standard deviation in log RMSE: the change would be noise), provided the last batch's
    own gain was as small (a curve that still falls steeply is not noise, even where a
    power law fits it badly); with five points or more, a gain below 10 %.
    """
    if n_points >= max_points:
        return f"{n_points} points reached max_points = {max_points}"
    target = NOISE_FLOOR if target is None else target
    if curve and curve[-1][1] <= target:
        return f"the cross-validation RMSE {curve[-1][1]:.5f} eV is below {target:.5f} eV"
    if len(curve) < 4:
        return None
    n, errors = np.log(np.array(curve, float)).T
    slope, intercept = np.polyfit(n, errors, 1)
    gain = -slope * np.log((n_points + batch) / n_points)  # expected drop of log RMSE
    noise = float(np.sqrt(np.sum((errors - slope * n - intercept) ** 2) / (len(n) - 2)))
    last = float(errors[-2] - errors[-1])  # the drop of log RMSE the last batch brought
    if gain < noise and last < noise:
        return (
            f"another {batch} points promise {100 * (1 - np.exp(-gain)):.1f} % lower RMSE, "
            f"and the last batch brought {100 * (1 - np.exp(-last)):.1f} %, both within the "
            f"learning curve's scatter ({100 * (np.exp(noise) - 1):.1f} %)"
        )
    if len(curve) >= 5 and abs(1.0 - np.exp(-gain)) < 0.1:
        return f"another {batch} points promise less than 10 % lower RMSE"
    return None


def read_structures(source) -> list[Atoms]:
    """The user's initial data as a list: a file read (an ASE database, an MLatom
    molecular-database ``.json`` such as ``init_cond_db.json``, or anything ``ase.io.read``
    reads: ``.extxyz``, ``.xyz``, ``.traj``), a function called."""
    if isinstance(source, (str, os.PathLike)):
        from pathlib import Path

        path = Path(source)
        if not path.exists():
            raise ValueError(f"initial data file {source} does not exist")
        try:
            if path.suffix == ".json":
                from ase_al.io import read_mlatom_json

                return read_mlatom_json(path)
            if path.suffix in (".extxyz", ".xyz", ".traj"):
                from ase.io import read

                return list(read(path, ":"))
            return [read_row(row, False) for row in connect(source).select()]
        except Exception as err:
            raise ValueError(f"cannot read initial data from {source}: {err}") from None
    if callable(source):
        return list(source())
    return list(source)


def check_structures(source, numbers, n_states: int | None) -> bool:
    """Check the user's initial data against the molecule's atomic ``numbers``; True if it is
    labelled (energies and forces; per state for a multistate run), False if all of it needs
    labelling (a mix is an error)."""
    if not isinstance(source, (list, tuple)) or not source:
        raise ValueError(
            "initial data must be a non-empty list of Atoms (or an ASE database path), got "
            f"{type(source).__name__}" + (" of length 0" if not source else "")
        )
    check_same_atoms(source, numbers, "initial data structure")
    has_labels = []
    for index, atoms in enumerate(source):
        results = atoms.calc.results if atoms.calc is not None else {}
        has_labels.append("energy" in results)
        if "energy" in results and "forces" not in results:
            raise ValueError(f"initial data structure {index} carries an energy but no forces")
        if "energy" in results and n_states is not None:
            if (
                "state_forces" not in results
                or len(np.atleast_1d(results.get("state_energies", []))) < n_states
            ):
                raise ValueError(
                    f"initial data structure {index} needs 'state_energies' and "
                    f"'state_forces' of at least {n_states} states"
                )
    if any(has_labels) and not all(has_labels):
        raise ValueError(
            f"initial data: {sum(has_labels)} of {len(source)} structures carry energies "
            "and forces; give all labelled (imported) or all unlabelled (labelled with the "
            "reference)"
        )
    return all(has_labels)


def keep_states(atoms: Atoms, n_states: int) -> Atoms:
    """A copy whose multistate labels keep the lowest ``n_states`` states."""
    results = atoms.calc.results
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, energy=results["energy"], forces=results["forces"])
    copy.calc.results["state_energies"] = np.asarray(results["state_energies"])[:n_states]
    copy.calc.results["state_forces"] = np.asarray(results["state_forces"])[:n_states]
    return copy


def make(learner, points, state) -> None:
    """The initial data of ``learner``'s run (resumably): the user's structures, or Wigner
    batches until :func:`stop_reason` gives one; the learning curve goes into ``state``."""
    if state.get("initial_data_done"):
        return
    init_dir = learner.workdir / "init"
    init_dir.mkdir(exist_ok=True)
    curve = state.setdefault("learning_curve", [])
    failures = state.setdefault("failed", 0)
    options = learner.initial_data
    if options.structures is not None:
        import_structures(learner)
        state["initial_data_done"] = True
        learner._save_state(state)
        return
    batch = len(list(init_dir.glob("batch_*.traj")))
    # a batch queued before a kill is labelled first
    if batch and len(curve) < batch:
        queue = read_traj(init_dir / f"batch_{batch - 1}.traj")
        failures += learner._label_queue(
            queue, initial_batch=True, iteration=0, source="initial wigner"
        )
    plan = learner._plan()
    while True:
        images = learner.labelled(iteration=0)
        if len(curve) < batch and len(images) >= 2:
            curve.append([len(images), cross_validation_rmse(plan, images, learner.seed)])
            log.info("initial data: %d points, CV RMSE %.4f eV", *curve[-1])
            state["failed"] = failures
            learner._save_state(state)
        target = options.rmse if options.rmse is not None else learner.uncertainty.floor
        reason = stop_reason(curve, len(images), options.batch, options.max_points, target)
        if reason:
            log.info("initial data complete with %d points: %s", len(images), reason)
            state["initial_data_stop"] = reason
            break
        learner.stage.begin(learner.seed, 0, batch)
        queue = learner.stage.wigner(points, options.batch, f"init{batch:03d}", options.temperature)
        write_traj(init_dir / f"batch_{batch}.traj", queue)
        batch += 1
        failures += learner._label_queue(
            queue, initial_batch=True, iteration=0, source="initial wigner"
        )
    state.update(initial_data_done=True, failed=failures)
    learner._save_state(state)
    plot_learning_curve(curve, learner.workdir / "learning_curve.png")


def import_structures(learner) -> None:
    """The user's initial data into labelled.db: labelled structures are copied,
    unlabelled ones labelled with the reference, resumably."""
    queue_path = learner.workdir / "init" / "user.traj"
    if queue_path.exists():  # unlabelled structures queued before a kill
        queue = read_traj(queue_path)
        learner._label_queue(queue, initial_batch=True, iteration=0, source="initial user")
        return
    db = learner.run_dir.database()
    if db.count(iteration=0):
        return  # imported before a kill
    source = learner.initial_structures
    if source is None:  # structures given as a list or a function
        source = read_structures(learner.initial_data.structures)
    if not check_structures(source, learner.molecule.numbers, learner.n_states):
        queue = [atoms.copy() for atoms in source]
        for index, atoms in enumerate(queue):
            atoms.info["uid"] = f"user-{index:06d}"
        write_traj(queue_path, queue)
        learner._label_queue(queue, initial_batch=True, iteration=0, source="initial user")
        return
    with db:
        for index, atoms in enumerate(source):
            if learner.n_states is not None:
                atoms = keep_states(atoms, learner.n_states)
            write_row(db, atoms, iteration=0, source="user", uid=f"user-{index:06d}")


__all__ = [
    "check_structures",
    "NOISE_FLOOR",
    "stop_reason",
    "import_structures",
    "keep_states",
    "make",
    "read_structures",
]
