"""The run directory of an active-learning run, and :class:`ALRun`, its public reader.

    workdir/
      al.log                 the log
      state.json             settings, threshold (and the uids of its validation
                             structures), the learning curve, per-iteration summaries
      equilibrium.traj       reference equilibrium geometry; hessian.npy its Hessian (eV/Å²)
      labelled.db            every label, written the moment it exists (ase db / ase gui)
      init/batch_K.traj      initial-data structures queued for labelling (init/user.traj:
                             the user's unlabelled initial data)
      learning_curve.png     initial-data learning curve
      iteration_K/           main.npz, aux.npz (or member_i, committee/, main/ and aux/ for
                             multistate models), selected.traj, sampling.json,
                             trajectories/traj_*.traj
      iteration_K/checks.traj   the iteration's overconfidence checks (labelled with
                             source="check"); iteration_K/calibration.png
      iteration_1/threshold_models/  the models that set the automatic threshold
      progress.png           errors, threshold, fraction of certain trajectories per iteration
      calibration.png        uncertainty vs true error of the checked and labelled structures

Every file is written atomically, so a killed run leaves the old version or the new one.
"""

from __future__ import annotations

import json
from pathlib import Path

from ase import Atoms

from ase_al.files import atomic_write, open_database
from ase_al.io import read_row


def queue_order(row) -> tuple:
    """The key that sorts ``labelled.db`` rows in the order they were queued: iteration
    (0 for the initial data), then uid, then row id. Sorting by uid alone put every
    iteration's checks (``check<k>-...``) before the initial data (``init...``) and the
    earlier iterations' selections (``it<k>-...``), so that the training list did not grow by
    appending: each fit drew a different validation split, held out structures the warm-started
    weights had trained on, and took old structures as the new ones."""
    return (int(row.get("iteration", 0)), row.get("uid", ""), row.id)


class ALRun:
    """Read (and, for the learner, write) an active-learning run directory.

    >>> run = ALRun("al_methanol")
    >>> run.converged, len(run.history), len(run.labelled())
    >>> model = run.model()            # the final model, loaded from its files
    """

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)

    # -- reading ---------------------------------------------------------------------
    @property
    def state(self) -> dict:
        """The contents of ``state.json`` (empty before the run started)."""
        path = self.workdir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"iterations": []}

    @property
    def history(self) -> list[dict]:
        """One summary per finished iteration: ``iteration``, ``n_train``, ``threshold``
        (eV), ``validation_rmse`` (eV), ``n_trajectories``, ``n_certain``, ``n_uncertain``,
        ``sampling_batches``, ``failed``, and the overconfidence checks (eV; per state lists
        for a multistate run): ``n_checks``, ``check_rmse``, ``uncertain_rmse``,
        ``over_target``, ``spearman``, ``target_error`` (with it ``check_rmse_upper`` and
        ``meets_target``) and ``calibration`` (see :meth:`calibration`); with
        ``Sampling(relax_starting_points=True)``, ``relaxations`` and ``relaxation_errors``
        (see :meth:`validated_iteration`)."""
        return self.state["iterations"]

    def validated_iteration(self, tolerance: float | None = None) -> int | None:
        """The latest iteration whose model's own stationary points held against the
        reference: every starting point, optimised on that iteration's model (a run with
        ``Sampling(relax_starting_points=True)``), ended without running into a hole, and
        the model's energy change along the way is within ``tolerance`` (eV; default: the
        run's ``target_error``) of the reference's at the same two structures
        (``history[k - 1]["relaxation_errors"]``). None when no iteration passed.

        The ends were labelled after the model was trained, so this is a held-out test of
        what barriers and binding energies are read from. A committee can agree on a
        spurious well (a weakly bound complex on a flat surface) and a later iteration can
        open one that an earlier one had closed: in a Diels-Alder run the learned barrier
        was within 0.4 kcal/mol of GFN2-xTB's at the iterations whose complex relaxed to
        within 0.5 kcal/mol, and 2-5 kcal/mol off at the three whose complex fell 2.7-12
        kcal/mol off. Use ``run.model(run.validated_iteration())`` for the model to keep.

        >>> k = run.validated_iteration(1.0 * ase.units.kcal / ase.units.mol)
        """
        from ase_al.active_learning.checks import validated

        relaxed = [it for it in self.history if "relaxation_errors" in it]
        if not relaxed:
            raise ValueError(
                f"{self.workdir}: no iteration relaxed its starting structures on its model "
                "(Sampling(relax_starting_points=True)): nothing to validate"
            )
        for entry in reversed(relaxed):
            bound = entry.get("target_error") if tolerance is None else tolerance
            if bound is None:
                raise ValueError(
                    "validated_iteration needs a tolerance (eV): the run has no target_error"
                )
            if validated(entry, float(bound)):
                return int(entry["iteration"])
        return None

    def calibration(self, iteration: int | None = None) -> dict:
        """The overconfidence checks of ``iteration`` (default: the last): arrays
        ``uncertainty`` and ``error`` (|E_model − E_reference|, eV; (P,) or (P, n_states)) and
        ``certain`` (True: a checked certain structure, False: a labelled uncertain one),
        with the iteration's ``threshold`` and ``target_error`` (eV)."""
        import numpy as np

        if not self.history:
            raise ValueError(f"{self.workdir} has no finished iteration")
        entry = self.history[-1 if iteration is None else int(iteration) - 1]
        data = entry.get("calibration", {"uncertainty": [], "error": [], "certain": []})
        return {
            "uncertainty": np.asarray(data["uncertainty"], float),
            "error": np.asarray(data["error"], float),
            "certain": np.asarray(data["certain"], bool),
            "threshold": entry["threshold"],
            "target_error": entry.get("target_error"),
        }

    @property
    def converged(self) -> bool:
        return bool(self.state.get("converged"))

    @property
    def settings(self) -> dict:
        """What the run sampled with (K, eV, fs), as recorded when it last started."""
        return self.state.get("settings", {})

    @property
    def learning_curve(self) -> list[tuple[int, float]]:
        """(number of points, cross-validation energy RMSE in eV) of the initial data."""
        return [tuple(point) for point in self.state.get("learning_curve", [])]

    def labelled(self, **selection) -> list[Atoms]:
        """All labelled structures (optionally selected by key-value pairs, e.g.
        ``iteration=0``), in the order they were queued (by iteration, then uid: an
        iteration's checks, ``check<k>-...``, before its selected structures, ``it<k>-...``),
        whatever order the parallel labelling finished them in: the training data, and so
        the models, do not depend on worker timing, and each iteration's list is the last one
        with the new labels appended (the networks' validation split is drawn per index, and
        a warm start takes the structures from the index it had fitted on as the new ones).
        Multistate labels carry ``state_energies``/``state_forces``."""
        if not (self.workdir / "labelled.db").exists():
            return []
        db = self.database()
        rows = sorted(db.select(**selection), key=queue_order)
        return [read_row(row) for row in rows]

    def model(self, iteration: int | None = None, uncertainty=None):
        """The uncertainty-aware model of ``iteration`` (default: the last one), loaded from
        its files: a :class:`~ase_al.calculators.Committee` (or a
        :class:`~ase_al.calculators.MultiStateCommittee`, or for the variance, distance and
        function kinds an :class:`~ase_al.calculators.uncertain.UncertainModel`;
        ``uncertainty``: the function of a run with a function as its uncertainty)."""
        from ase_al.active_learning.training import load_models

        k = len(self.history) if iteration is None else int(iteration)
        folder = self.workdir / f"iteration_{k}"
        if k < 1 or not folder.is_dir():
            raise FileNotFoundError(f"{self.workdir} has no models of iteration {k}")
        models = load_models(folder, uncertainty)
        if models is None:
            raise FileNotFoundError(f"{folder} holds no saved models")
        return models

    # -- writing (the learner) -------------------------------------------------------
    def database(self):
        """The labels' ASE database (created with its tables when absent)."""
        return open_database(self.workdir / "labelled.db")

    def save_state(self, state: dict) -> None:
        with atomic_write(self.workdir / "state.json") as partial:
            partial.write_text(json.dumps(state, indent=1))

    def iteration_dir(self, k: int) -> Path:
        return self.workdir / f"iteration_{k}"


__all__ = ["ALRun"]
