"""The orchestration of active learning: train → sample → label → repeat.

Physics-informed active learning of ML potentials (MLatom's ``ml.al``, arXiv:2404.11811).
The stages live beside this file: the run directory and its reader (``run.py``), the initial
data (``initial_data.py``), training through the model contract (``training.py``), the
threshold and selection rules (``selection.py``), the option objects (``settings.py``) and
the plots (``plots.py``), the sampling (``sampling.py``), the starting structures
(``starting_points.py``), the overconfidence checks (``checks.py``). (About 500 lines, a
fifth of them the class docstring that documents every option; the rest is the one loop and
the glue between the stages, which would be harder to follow split further.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from ase import Atoms

from ase_al.active_learning import checks
from ase_al.active_learning import initial_data as initial
from ase_al.active_learning.plots import plot_progress
from ase_al.active_learning.run import ALRun
from ase_al.active_learning.sampling import SamplingStage
from ase_al.active_learning.selection import format_threshold
from ase_al.active_learning.settings import (
    KINDS,
    LEGACY,
    Equilibrium,
    InitialData,
    Sampling,
    Selection,
    Uncertainty,
    from_keywords,
)
from ase_al.active_learning.starting_points import StartingPoints, build_starting_points
from ase_al.active_learning.training import (
    ModelRecipe,
    Plan,
    load_models,
    train_models,
    validation_threshold,
)
from ase_al.calculators import methods
from ase_al.calculators.base import ALWAYS_TRAIN
from ase_al.calculators.committee import Committee
from ase_al.errors import ReferenceCalculationError, check_atoms, check_same_atoms
from ase_al.executors import SerialExecutor, check_shippable
from ase_al.files import read_traj, write_traj
from ase_al.io import key_value_pairs
from ase_al.labelling import compute_label, label
from ase_al.options import (
    check_calculator,
    check_executor,
    check_int,
    check_type,
    unknown_keyword,
)

log = logging.getLogger("ase_al")


#: structures labelled on the model's own relaxation paths: a few per iteration, each where
#: an optimisation on the model went; never drawn into a network's validation split
ALWAYS_TRAINED = ("relaxation", "relaxation path", "relaxation end")


def trainable(images: list[Atoms]) -> list[Atoms]:
    """``images`` less those whose atoms have collapsed into one another
    (:func:`ase_al.samplers.relax.collapsed`): a model's hole labelled with the reference,
    tens to thousands of eV above anything physical, which a fit can only be thrown off by.
    They stay in ``labelled.db``; the order of the rest is kept. Those labelled on the
    model's relaxation paths (:data:`ALWAYS_TRAINED`) are marked ``info["always_train"]``:
    a network's random validation split (a tenth) does not take them. In a Diels-Alder run
    the end of the complex's relaxation, a well 4.7 kcal/mol too deep on the network, fell
    in it, and the next network, fitted without it, was 5.3 kcal/mol off there."""
    from ase_al.samplers.relax import collapsed

    kept = [atoms for atoms in images if not collapsed(atoms)]
    if len(kept) < len(images):
        log.warning(
            "%d labelled structures with collapsed atoms left out of training",
            len(images) - len(kept),
        )
    for atoms in kept:
        if key_value_pairs(atoms).get("sampled_by") in ALWAYS_TRAINED:
            atoms.info[ALWAYS_TRAIN] = True
    return kept


#: how a sampled structure was found, stored with its label in labelled.db
SAMPLING_KEYS = (
    "trajectory",
    "time_fs",
    "uncertainty",
    "sampling_batch",
    "sampled_by",
    "starting_point",
    "mode",
    "mode_cm1",
    "mode_displacement",
    "barrier_temperature",
    "barrier_seed",
)

_PARAMETERS = (
    "model",
    "workdir",
    "initial_data",
    "sampling",
    "selection",
    "uncertainty",
    "equilibrium",
    "executor",
    "seed",
    "progress",
    "warm_start",
)


def _unknown(name: str) -> TypeError:
    """An unknown keyword; a field of an option object given flat, or a misspelt
    first-release keyword, is pointed to its option object."""
    import difflib

    for kind, cls in KINDS.items():  # a field of an option object given flat
        if name in {f.name for f in dataclasses.fields(cls)}:
            return TypeError(
                f"ActiveLearner got an unknown keyword {name!r}: it is a field of "
                f"{cls.__name__}, give {kind}={cls.__name__}({name}=...)"
            )
    close = difflib.get_close_matches(name, list(LEGACY), n=1, cutoff=0.75)
    if close:
        kind, attribute = LEGACY[close[0]]
        cls = type(from_keywords({}, {}, warn=False)[kind]).__name__
        return TypeError(
            f"ActiveLearner got an unknown keyword {name!r}; did you mean {close[0]!r}? "
            f"(now {kind}={cls}({attribute}=...))"
        )
    return unknown_keyword("ActiveLearner", name, set(_PARAMETERS) | {"molecule", "reference"})


class ActiveLearner:
    """Active learning of a machine-learning potential for one molecule.

    Parameters
    ----------
    molecule : Atoms, or a list of Atoms
        Starting geometry (optimised with the reference unless
        ``equilibrium=Equilibrium(optimize=False)``). A list gives several starting structures
        of the same atoms in the same order, e.g. conformers, or the minima and transition
        state of a reaction: each is a source of initial data and of sampling initial
        conditions, in proportion to ``atoms.info["weight"]`` (default 1). Minima are
        optimised with the reference and Wigner-sampled; a structure marked
        ``info["transition_state"] = True`` (as :func:`ase_al.find_transition_state` marks its
        result) is refined to the reference's saddle point and sampled by quasi-classical
        transition-state sampling. KREG's RE descriptor and the threshold use one reference
        geometry for all, the lowest-energy minimum (see
        :mod:`ase_al.active_learning.starting_points`).
    reference : str or Calculator
        Labelling method: a name for :func:`ase_al.methods` (``"GFN2-xTB"``,
        ``"B3LYP/6-31G*"``) or a calculator (sent to worker processes by cloudpickle).
    model : str, class or untrained model
        ``"KREG"``, ``"ANI"``, ``"MACE"``, a :class:`~ase_al.calculators.TrainableModel`
        class, or an untrained instance whose settings every iteration's models copy
        (``KREG(sigma=2.0)``, ``ANI(max_epochs=500)``). An untrained
        :class:`~ase_al.calculators.Committee` is the whole uncertainty-aware model (every
        iteration trains a clone; its spread is the uncertainty). An untrained
        :class:`~ase_al.calculators.MultiState` makes it **excited-state active learning**:
        the reference must be a multistate calculator (e.g. ``methods("CIS/6-31G",
        n_states=3)``), labels hold every state's energies and forces, the uncertainty and
        the threshold are per state, and the default sampler is ``"surface_hopping"``.
    workdir : path
        Where everything is written (:class:`ALRun` reads it); running again with the same
        workdir resumes.
    initial_data : InitialData, or a path / list of Atoms / callable
        How the initial data is made (Wigner batches and the learning-curve rule), or your
        own structures (shorthand for ``InitialData(structures=...)``).
    sampling : Sampling
        The sampler, its trajectories, temperature (K) and options (``max_time_fs``, ...).
    selection : Selection
        How many structures are labelled per iteration, how they are chosen, and when the
        run stops (``min_new_points``, ``max_iterations``).
    uncertainty : Uncertainty or str
        Physics-informed pair or committee, and the threshold (eV; default automatic).
    equilibrium : Equilibrium
        Optimisation and frequencies (method, or given normal modes).
    executor : concurrent.futures.Executor, optional
        Where reference calculations run. Default: the shared local pool
        (:func:`ase_al.executors.default_executor`), whose workers never re-run the calling
        script, so no ``if __name__ == "__main__":`` guard is needed, in scripts or notebooks;
        ``dask.distributed.Client(...).get_executor()`` on a cluster.
    seed : int
    progress : bool, optional
        Progress bars (default: when interactive).
    warm_start : bool
        Networks (ANI, MACE): every iteration's models continue from the previous
        iteration's weights instead of a fresh initialisation (MLatom's ``reuse_model``), so
        that ``max_epochs`` per iteration adds up over the run. With the physics-informed
        pair or a committee; a model whose ``train`` cannot continue (KREG, solved exactly
        each time) is refused here.

    The first release's flat keywords (``temperature``, ``init_batch``, ``sampler_kwargs``,
    ``new_points``, ``uq_threshold``, ``model_kwargs``, ...) still work for one release,
    with a ``FutureWarning``.

    Like ASE's optimizers and dynamics, :meth:`irun` yields after every iteration and
    :meth:`attach` calls observers every ``interval`` iterations.
    """

    def __init__(
        self,
        molecule: Atoms,
        reference,
        *,
        model="KREG",
        workdir: str | Path = "al",
        initial_data=None,
        sampling: Sampling | None = None,
        selection: Selection | str | None = None,
        uncertainty: Uncertainty | str | None = None,
        equilibrium: Equilibrium | None = None,
        executor=None,
        seed: int = 0,
        progress: bool | None = None,
        warm_start: bool = False,
        **legacy,
    ):
        molecules = list(molecule) if isinstance(molecule, (list, tuple)) else [molecule]
        if not molecules:
            raise ValueError("molecule: give a structure or a non-empty list of structures")
        check_atoms(molecules[0])
        check_same_atoms(molecules, molecules[0].numbers, "starting structure", "the first's atoms")
        for name in legacy:
            if name not in LEGACY and name not in ("sampler_kwargs", "model_kwargs"):
                raise _unknown(name)
        model_kwargs = dict(check_type("model_kwargs", legacy.pop("model_kwargs", {}), dict))
        options = from_keywords(
            {
                "initial_data": initial_data,
                "sampling": sampling,
                "selection": selection,
                "uncertainty": uncertainty,
                "equilibrium": equilibrium,
            },
            legacy,
        )
        self.initial_data: InitialData = options["initial_data"]
        self.sampling: Sampling = options["sampling"]
        self.selection: Selection = options["selection"]
        self.uncertainty: Uncertainty = options["uncertainty"]
        self.equilibrium: Equilibrium = options["equilibrium"]
        self.molecules = [atoms.copy() for atoms in molecules]
        self.molecule = self.molecules[0]
        if len(self.molecules) > 1 and self.equilibrium.vibrations is not None:
            raise ValueError(
                "Equilibrium(vibrations=...) describes one structure; with several starting "
                "structures the modes of each are computed"
            )
        self.workdir = Path(check_type("workdir", workdir, (str, Path)))
        self.run_dir = ALRun(self.workdir)
        self.executor = check_executor(executor)
        self.reference = check_calculator(reference, "reference")
        check_shippable(self.reference, "reference calculator", self.executor)
        if self.equilibrium.method is not None:
            check_calculator(self.equilibrium.method, "equilibrium method")
        self.seed = check_int("seed", seed, minimum=0)
        self.rng = np.random.default_rng(seed)
        self.progress = progress
        self._observers: list[tuple[Callable, int, tuple, dict]] = []
        self._reference_geometry = None  # set with the starting points
        #: the structures of an initial-data file, as read when the learner was built
        self.initial_structures: list[Atoms] | None = None
        self.recipe = ModelRecipe(model, model_kwargs, self.uncertainty.kind, self.seed)
        self.warm_start = check_type("warm_start", warm_start, bool)
        if self.warm_start:
            self.recipe.check_warm_start()
        self.n_states = self.recipe.n_states
        self.stage = SamplingStage(
            self.sampling, self.selection, self.molecule, self.n_states, self.rng, progress
        )
        if self.sampling.barrier_top_tolerance is not None and not any(
            atoms.info.get("transition_state") for atoms in self.molecules
        ):
            raise ValueError(
                "Sampling.barrier_top_tolerance checks the barrier top at a transition state: "
                "mark one starting structure info['transition_state'] = True"
            )
        self._check_initial_data()

    # -- the sampling stage's pieces, for the initial data and tests --------------------
    def _wigner(self, equilibrium, vibrations, n, tag, temperature=None) -> list[Atoms]:
        points = StartingPoints.single(equilibrium, vibrations)
        return self.stage.wigner(points, n, tag, temperature)

    def _initial_conditions(self, equilibrium, vibrations, n) -> list[Atoms]:
        return self.stage.initial_conditions(StartingPoints.single(equilibrium, vibrations), n)

    def _check_initial_data(self) -> None:
        source = self.initial_data.structures
        mlatom_file = self.workdir / "init_cond_db.json"
        if source is None and mlatom_file.is_file():  # MLatom users keep it in the AL folder
            log.info("initial data: %s (MLatom's molecular database)", mlatom_file)
            self.initial_data = dataclasses.replace(self.initial_data, structures=str(mlatom_file))
            source = self.initial_data.structures
        if isinstance(source, (str, os.PathLike)):  # read now: a bad file fails before work
            source = initial.read_structures(source)
            self.initial_structures = source  # and is not read again
        if isinstance(source, (list, tuple)):
            initial.check_structures(source, self.molecule.numbers, self.n_states)

    # -- models --------------------------------------------------------------------------
    def model_factory(self, _member: int | None = None, **changes):
        """A new, untrained model of the learner's type and settings (see
        :meth:`ModelRecipe.build`)."""
        return self.recipe.build(_member, **changes)

    def _plan(self) -> Plan:
        return Plan(
            factory=self.model_factory,
            kind=self.uncertainty.kind,
            committee_size=self.uncertainty.committee_size,
            seed=self.seed,
            n_states=self.n_states,
            recipe=self.recipe.committee,
            equilibrium=self._reference_geometry,
            warm_start=self.warm_start,
            concurrent=not isinstance(self.executor, SerialExecutor),
        )

    # -- files -------------------------------------------------------------------------
    def _state(self) -> dict:
        return self.run_dir.state

    def _save_state(self, state: dict) -> None:
        self.run_dir.save_state(state)

    def labelled(self, **selection) -> list[Atoms]:
        """All labelled structures (see :meth:`ALRun.labelled`)."""
        return self.run_dir.labelled(**selection)

    def _label_queue(self, queue: list[Atoms], initial_batch: bool = False, **pairs) -> int:
        """Label the structures of ``queue`` that are not in the database yet; count failures.

        ``initial_batch``: a reference that fails on every structure of a batch of
        near-equilibrium Wigner samples is not a bad geometry but a broken setup (wrong method
        options, a missing program); that stops the run with the first error instead of
        sampling and failing forever. (Structures selected by sampling may all be hard cases;
        their failures are only counted.)
        """
        db = self.run_dir.database()
        done = {row.uid for row in db.select(columns=["key_value_pairs"]) if "uid" in row}
        todo = [a for a in queue if a.info["uid"] not in done]
        if len(todo) < len(queue):
            log.info(
                "resuming: %d of %d structures already labelled", len(queue) - len(todo), len(queue)
            )
        result = label(
            todo,
            self.reference,
            self.executor,
            db,
            pairs,
            self.progress,
            self.n_states,
            info_keys=SAMPLING_KEYS,
        )
        if initial_batch and len(todo) >= 3 and len(result.failed) == len(todo):
            raise ReferenceCalculationError(
                f"the reference failed on all {len(todo)} structures of this batch; "
                f"the first error: {result.failed[0][1]}",
                result.failed[0][0],
            )
        return len(result.failed)

    # -- the workflow --------------------------------------------------------------------
    def attach(self, function: Callable, interval: int = 1, *args, **kwargs) -> None:
        """Call ``function(*args, **kwargs)`` after every ``interval``-th iteration (as
        ``ase.optimize`` and ``ase.md`` observers are attached)."""
        if not callable(function):
            raise TypeError(f"attach() needs a callable, got {type(function).__name__}")
        self._observers.append((function, check_int("interval", interval, 1), args, kwargs))

    def run(self) -> Committee:
        """Run (or resume) active learning; returns the final model as a :class:`Committee`
        (for the physics-informed pair its prediction is the main model's), or for a
        multistate model a :class:`~ase_al.calculators.MultiStateCommittee`."""
        model = None
        for summary in self.irun():
            model = summary["model"]
        return model

    def irun(self) -> Iterator[dict]:
        """Run (or resume) active learning one iteration at a time: yields after every
        iteration a summary (the :attr:`ALRun.history` entry plus ``model``, the iteration's
        uncertainty-aware model, and ``converged``). A finished run yields its last
        iteration once."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.workdir / "al.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        log.addHandler(handler)
        level = log.level  # al.log records INFO for this run; the user's setting comes back
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)
        try:
            points = self._starting_points()
            state = self._state()
            settings = self._settings()
            self._adopt_new_threshold(state, settings)
            state["settings"] = settings
            self._save_state(state)
            self._initial_data(points, state)
            yield from self._iterate(points, state)
        finally:
            log.setLevel(level)
            log.removeHandler(handler)
            handler.close()

    def _relaxation_errors(self, folder, points) -> dict:
        """Iteration ``folder``'s relaxations of the starting points on its model against the
        reference (eV, :func:`checks.relaxation_errors`), logged in kcal/mol."""
        # a point's energy is the reference's when the reference optimised it; a single
        # starting structure (or one read back) gets one reference calculation, kept
        if self.equilibrium.method is None:
            for point in points:
                if point.energy is None:
                    point.energy = float(
                        compute_label(self.reference, point.atoms.copy()).get_potential_energy()
                    )
            energies = [p.energy for p in points]
        else:
            energies = [None] * len(points)  # then the labelled start, if any
        errors = checks.relaxation_errors(folder, points, self.labelled(), energies)
        log.info(
            "the model's own stationary points against the reference (energy change from "
            "each starting structure, model minus reference): %s kcal/mol",
            ", ".join(
                f"{k}: {'n/a' if e is None else format(e / checks.KCAL_MOL, '+.2f')}"
                for k, e in errors.items()
            ),
        )
        return errors

    def _log_validated(self, history: list[dict]) -> None:
        """At the end of a run that relaxed its starting structures with a target error:
        which iteration's model held there (:meth:`ALRun.validated_iteration`)."""
        target = self.uncertainty.target_error
        if target is None or not any("relaxation_errors" in it for it in history):
            return
        k = self.run_dir.validated_iteration()
        if k is None:
            log.warning(
                "no iteration's model relaxed every starting structure to within the target "
                "error (%.3g eV) of the reference's energy change",
                target,
            )
        elif k != len(history):
            log.warning(
                "the last model's own stationary points are off the reference by more than the "
                "target error; iteration %d's held: ase_al.ALRun(%r).model(%d)",
                k,
                str(self.workdir),
                k,
            )

    def _threshold_ceiling(self, state: dict):
        """eV: how far the checks may raise the threshold: the one the run started from (the
        measured m+3MAD, not below ``Uncertainty.floor``) or the one given, the larger; None
        when neither is known."""
        given = state.get("settings", {}).get("uq_threshold")
        measured = state.get("uq_threshold_measured")
        if measured is not None:
            measured = np.maximum(measured, self.uncertainty.floor)
        known = [np.asarray(t, float) for t in (given, measured) if t is not None]
        if not known:
            return None
        top = known[0] if len(known) == 1 else np.maximum(*known)
        return float(top) if top.ndim == 0 else top.tolist()

    @staticmethod
    def _adopt_new_threshold(state: dict, settings: dict) -> None:
        """A resumed run given an explicit ``Uncertainty(threshold=...)`` other than the one
        it was started (or last resumed) with takes it from now on, in place of the threshold
        the run had come to (measured, lowered or raised by the checks); the log says so."""
        given = settings["uq_threshold"]
        if given is None or "uq_threshold" not in state:
            return
        before = state.get("settings", {}).get("uq_threshold")
        if before is not None and np.allclose(before, given):
            return
        log.info(
            "uncertainty threshold %s eV given on resuming: it replaces the run's %s eV",
            format_threshold(given),
            format_threshold(state["uq_threshold"]),
        )
        state["uq_threshold"] = given

    def _settings(self) -> dict:
        """What this run samples with, in ASE units (K, eV, fs), as recorded in state.json."""
        plain = (int, float, str, bool, type(None))
        init_temperature = self.initial_data.temperature
        return {
            "temperature": self.sampling.temperature,
            "init_temperature": (
                self.sampling.temperature if init_temperature is None else init_temperature
            ),
            "freeze_below_cm1": self.sampling.freeze_below_cm1,
            "relax_starting_points": self.sampling.relax_starting_points,
            "frequency_tolerance": self.sampling.frequency_tolerance,
            "barrier_top_tolerance": self.sampling.barrier_top_tolerance,
            "barrier_top_temperatures": (
                None
                if self.sampling.barrier_top_temperatures is None
                else list(self.sampling.barrier_top_temperatures)
            ),
            "uq_threshold": self.uncertainty.threshold,
            "init_batch": self.initial_data.batch,
            "max_init_points": self.initial_data.max_points,
            "new_points": self.selection.new_points,
            "min_new_points": self.selection.min_new_points,
            "max_iterations": self.selection.max_iterations,
            "warm_start": self.warm_start,
            "sampler": getattr(self.stage.sampler, "__name__", type(self.stage.sampler).__name__),
            "sampler_kwargs": {
                "n_trajectories": self.sampling.n_trajectories,
                **{k: v for k, v in self.stage.sampler_options.items() if isinstance(v, plain)},
            },
        }

    def _starting_points(self) -> StartingPoints:
        calc = self.equilibrium.method or self.reference
        calc = methods(calc) if isinstance(calc, str) else calc
        points = build_starting_points(
            self.molecules,
            calc,
            self.workdir,
            self.equilibrium.optimize,
            self.equilibrium.vibrations,
        )
        self._reference_geometry = points.reference.copy()
        self._reference_geometry.calc = None
        # models with a reference geometry (KREG's RE descriptor; for a multistate model, every
        # state's model) use the optimised one, as MLatom does, not their default (the
        # lowest-energy training structure, which may change from one iteration to the next)
        if self.recipe.model_type.uses_equilibrium and "equilibrium" not in self.recipe.kwargs:
            reference_geometry = points.reference.copy()
            reference_geometry.calc = None
            self.recipe.kwargs["equilibrium"] = reference_geometry
        return points

    def _initial_data(self, points, state) -> None:
        initial.make(self, points, state)

    def _iterate(self, points, state) -> Iterator[dict]:
        history = state["iterations"]
        plan = self._plan()
        finished = state.get("converged") or len(history) >= self.selection.max_iterations
        if history and finished:
            # a finished run: its final models, loaded (not retrained) where they were saved
            k = len(history)
            log.info("run already finished after %d iterations: returning its models", k)
            folder = self.run_dir.iteration_dir(k)
            pair = load_models(folder, plan.uq_function)
            if pair is None:  # a run written before models were saved with a manifest
                pair, _ = train_models(plan, self.labelled(), folder)
            yield {**history[-1], "model": pair, "converged": bool(state.get("converged"))}
            return
        while True:
            k = len(history) + 1
            folder = self.run_dir.iteration_dir(k)
            images = trainable(self.labelled())
            previous = self.run_dir.iteration_dir(k - 1) if k > 1 else None
            pair, validation_rmse = train_models(plan, images, folder, previous)
            threshold = state.get("uq_threshold", self.uncertainty.threshold)
            if threshold is None:
                threshold, held, measured = validation_threshold(
                    plan,
                    images,
                    folder,
                    self.uncertainty.multiplier,
                    self.uncertainty.validation_fraction,
                    self.seed,
                    self.uncertainty.floor,
                )
                state.update(
                    uq_threshold=threshold,
                    uq_threshold_measured=measured,
                    threshold_validation_uids=held,
                )
                self._save_state(state)
            # each starting point's own threshold for its relaxation, where its checked end
            # was off (checks.adjusted_relaxation_thresholds); JSON keys are strings
            relaxation_thresholds = {
                int(index): value for index, value in state.get("relaxation_thresholds", {}).items()
            }
            selected_path = folder / "selected.traj"
            summary_path = folder / "sampling.json"
            checks_path = folder / "checks.traj"
            barrier_path = folder / "barrier.traj"
            if selected_path.exists() and summary_path.exists():
                selected = read_traj(selected_path)
                sampled = json.loads(summary_path.read_text())
                check_queue = read_traj(checks_path) if checks_path.exists() else []
                barrier_queue = read_traj(barrier_path) if barrier_path.exists() else []
            else:
                self.stage.begin(self.seed, k)
                selected, sampled, certain, ends = self.stage.iteration(
                    pair,
                    threshold,
                    points,
                    folder,
                    self.labelled,
                    relaxation_thresholds=relaxation_thresholds,
                )
                barrier_queue = self.stage.barrier_samples(points)
                for index, atoms in enumerate(barrier_queue):
                    atoms.info["uid"] = f"barrier{k:03d}-{index:06d}"
                write_traj(barrier_path, barrier_queue)
                for index, atoms in enumerate(selected):
                    atoms.info["uid"] = f"it{k:03d}-{index:06d}"
                n = checks.n_checks(
                    sampled["n_trajectories"],
                    self.uncertainty.check_fraction,
                    self.uncertainty.min_checks,
                )
                check_queue = checks.draw(certain, n, self.seed, k)
                ends = ends if n else []  # the model's own stationary points, where certain
                for atoms in ends:
                    atoms.info["uid"] = f"check{k:03d}-end{atoms.info['starting_point']:02d}"
                check_queue += ends
                checked = {atoms.info["starting_point"] for atoms in ends}
                for relaxation in sampled.get("relaxations", []):
                    relaxation["end_checked"] = relaxation["starting_point"] in checked
                write_traj(checks_path, check_queue)
                write_traj(selected_path, selected)
                summary_path.write_text(json.dumps(sampled))
            log.info(
                "iteration %d: %d training points, %d/%d trajectories certain, %d selected",
                k,
                len(images),
                sampled["n_certain"],
                sampled["n_trajectories"],
                len(selected),
            )
            converged, failures, checked = checks.check_and_label(
                self, k, pair, threshold, sampled, selected, check_queue, barrier_queue, points
            )
            state["failed"] = state.get("failed", 0) + failures
            if sampled.get("relaxations"):
                checked["relaxation_errors"] = self._relaxation_errors(folder, points)
            history.append(
                {
                    "iteration": k,
                    "n_train": len(images),
                    "threshold": threshold,
                    "validation_rmse": validation_rmse,
                    "failed": failures,
                    **sampled,
                    **checked,
                }
            )
            adjusted = checks.adjusted_threshold(
                threshold,
                checked,
                self.uncertainty.target_error,
                converged,
                self._threshold_ceiling(state),
                history[-2] if len(history) > 1 else None,
            )
            if adjusted is not None:
                state["uq_threshold"] = adjusted
            if checked.get("relaxation_ends"):
                state["relaxation_thresholds"] = {
                    str(index): value
                    for index, value in checks.adjusted_relaxation_thresholds(
                        relaxation_thresholds,
                        checked["relaxation_ends"],
                        threshold,
                        self.uncertainty.target_error,
                    ).items()
                }
            state["converged"] = converged
            self._save_state(state)
            plot_progress(history, self.workdir / "progress.png")
            checks.plot_calibration(history, folder / "calibration.png")
            checks.plot_calibration(history, self.workdir / "calibration.png")
            for function, interval, args, kwargs in self._observers:
                if k % interval == 0:
                    function(*args, **kwargs)
            done = converged or k >= self.selection.max_iterations
            if done:
                log.info("%s after %d iterations", "converged" if converged else "stopped", k)
                self._log_validated(history)
            yield {**history[-1], "model": pair, "converged": converged}
            if done:
                return


__all__ = ["ActiveLearner", "SAMPLING_KEYS"]
