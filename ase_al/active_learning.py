"""Physics-informed active learning of ML potentials (MLatom's ``ml.al``, arXiv:2404.11811).

train → sample → label → repeat, with every step's state on disk so that a killed run
resumes where it stopped:

    workdir/
      al.log                 the log
      state.json             phase, threshold (and the uids of its validation structures),
                             per-iteration summary
      equilibrium.traj       reference equilibrium geometry; hessian.npy its Hessian (eV/Å²)
      labelled.db            every label, written the moment it exists (ase db / ase gui)
      init/batch_K.traj      initial-data structures queued for labelling
      learning_curve.png     initial-data learning curve
      iteration_K/           main.npz, aux.npz, selected.traj, trajectories/traj_*.traj
      iteration_1/threshold_models/  the models that set the automatic threshold
      progress.png           errors, threshold, fraction of certain trajectories per iteration
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.db import connect
from ase.vibrations import VibrationsData

from ase_al.calculators import methods, model_class
from ase_al.calculators.base import is_trainable
from ase_al.calculators.committee import Committee
from ase_al.calculators.kreg import pair_distances, re_descriptor, squared_distances
from ase_al.calculators.multistate import MultiState, MultiStateCommittee, multistate_labels
from ase_al.errors import ReferenceCalculationError, check_atoms, same_atoms
from ase_al.files import atomic_write, open_database, read_traj, write_traj
from ase_al.io import read_row, write_row
from ase_al.labelling import label
from ase_al.options import (
    accepted_parameters,
    check_calculator,
    check_defaults_kind,
    check_executor,
    check_int,
    check_keywords,
    check_number,
    check_signature,
    check_threshold,
    check_type,
    keyword_names,
    renamed,
    strict_keywords,
    takes_any_keyword,
)
from ase_al.samplers import get_sampler, wigner
from ase_al.samplers.batch_md import SamplingResult
from ase_al.simulations import HarmonicAnalysis, equilibrium_and_modes

log = logging.getLogger("ase_al")


#: how a sampled structure was found, stored with its label in labelled.db
SAMPLING_KEYS = ("trajectory", "time_fs", "uncertainty", "sampling_batch")


def _threshold(uncertainties: np.ndarray, multiplier: float) -> float | list[float]:
    """median + multiplier · MAD (MLatom's m+3mad) over axis 0: one value, or one per state
    for (P, n_states) uncertainties."""
    median = np.median(uncertainties, axis=0)
    value = median + multiplier * np.median(np.abs(uncertainties - median), axis=0)
    return float(value) if np.ndim(value) == 0 else [float(v) for v in value]


def farthest_points(candidates: np.ndarray, reference: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` of the ``candidates`` (rows: descriptors) chosen greedily, each the one
    farthest (Euclidean) from ``reference`` and the candidates chosen before it."""
    if n >= len(candidates):
        return np.arange(len(candidates))
    nearest = np.full(len(candidates), np.inf)
    if len(reference):
        nearest = np.sqrt(squared_distances(candidates, reference)).min(1)
    chosen = []
    for _ in range(n):
        k = int(np.argmax(nearest))
        chosen.append(k)
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[k], axis=1))
        nearest[k] = -np.inf
    return np.array(chosen)


def _keep_states(atoms: Atoms, n_states: int) -> Atoms:
    """A copy whose multistate labels keep the lowest ``n_states`` states."""
    from ase.calculators.singlepoint import SinglePointCalculator

    results = atoms.calc.results
    copy_ = atoms.copy()
    copy_.calc = SinglePointCalculator(copy_, energy=results["energy"], forces=results["forces"])
    copy_.calc.results["state_energies"] = np.asarray(results["state_energies"])[:n_states]
    copy_.calc.results["state_forces"] = np.asarray(results["state_forces"])[:n_states]
    return copy_


def _format(threshold) -> str:
    return " ".join(f"{t:.5f}" for t in np.atleast_1d(threshold))


class ActiveLearner:
    """Active learning of a machine-learning potential for one molecule.

    Parameters
    ----------
    molecule : Atoms
        Starting geometry (optimised with the reference unless ``optimize=False``).
    reference : str or Calculator
        Labelling method: a name for :func:`ase_al.methods` (``"GFN2-xTB"``,
        ``"B3LYP/6-31G*"``) or a picklable calculator.
    model : str, class, Committee or MultiState
        Trainable model type (``"KREG"``, ``"ANI"``, ``"MACE"``) or a class whose instances
        are calculators with ``train(images, forces=...)`` (and ideally ``predict``, ``save``,
        ``load``); or an untrained :class:`~ase_al.calculators.Committee` of such models (any
        mix of types, seeds and settings, its own weights, spread and ``train_forces``):
        every iteration trains a copy of it on all the data, and its spread is the
        uncertainty (``uq`` and ``committee_size`` are then not used).

        An untrained :class:`~ase_al.calculators.MultiState` (``MultiState(model="KREG",
        n_states=3)``) makes it **excited-state active learning**: the reference must be a
        multistate calculator (e.g. ``methods("CIS/6-31G", n_states=3)``; its lowest
        ``n_states`` states are labelled, energies and forces of each), the main and
        auxiliary models are multistate, the uncertainty and the threshold are per state, and
        the default sampler is ``"surface_hopping"`` (LZBL trajectories on the main model,
        stopped where a state is uncertain or the two models' hopping probabilities differ;
        ``sampler_kwargs`` ``initial_state``, ``hop_threshold``, ...).
    model_kwargs : dict, optional
        Passed to every model the learner creates, e.g. ``{"max_epochs": 500}`` for ANI.
    workdir : path
        Where everything is written; re-running with the same workdir resumes.
    temperature : float
        K, for the Wigner sampling of the MD initial conditions (and of the initial data
        unless ``init_temperature`` is given).
    init_temperature : float, optional
        K, for the Wigner sampling of the initial data (MLatom's
        ``initdata_sampler_kwargs["initial_temperature"]``); default ``temperature``.
    initial_conditions : list of Atoms or callable, optional
        Where the sampling trajectories start. Default: ``n_trajectories`` fresh Wigner
        samples (positions and momenta) at ``temperature`` each iteration. A list of
        ``Atoms`` with momenta: those, every iteration (``n_trajectories`` is their number).
        A callable ``initial_conditions(n, seed)`` returning ``n`` ``Atoms`` with momenta.
    init_batch : int
        Structures per initial-data batch.
    max_init_points : int
        Upper bound on the initial data set.
    init_rmse : float, optional
        eV; stop growing the initial data when the cross-validation RMSE is below it.
    sampler : str or callable
        ``"batch_md"`` (default), ``"md"``, ``"wigner"``, ``"surface_hopping"`` (default for
        a multistate model) or ``sampler(model, **kwargs)``.
    sampler_kwargs : dict
        Passed to the sampler (``n_trajectories`` = 100; for the MD samplers
        ``max_time_fs``, the longest trajectory, and ``time_step_fs``, both in fs).
    uq_threshold : float or list of float, optional
        eV (for a multistate model one value per state, or one for all); default: set on the
        first iteration as median + ``threshold_multiplier``·MAD of the uncertainties on a
        validation set (a random ``validation_fraction`` of the labelled data, held out from
        models trained for this purpose), then kept.
    threshold_multiplier : float
        The MAD multiplier of the automatic threshold (3: MLatom's ``m+3mad``).
    validation_fraction : float
        Fraction of the labelled data that sets the automatic threshold.
    new_points : int
        At most this many structures are labelled per iteration.
    fill_new_points : bool
        Keep sampling (new batches of trajectories from fresh initial conditions) until
        ``new_points`` uncertain structures are pooled, then label a random ``new_points`` of
        them: MLatom's behaviour. Default: label the uncertain structures of one batch.
        Convergence is judged on the first batch either way.
    max_sampling_batches : int
        Upper bound on the batches of one iteration with ``fill_new_points``.
    selection : {"random", "farthest"}
        How ``fill_new_points`` picks ``new_points`` of a larger pool: at random (MLatom's
        way), or greedily the structure farthest (RE descriptor, Euclidean) from everything
        labelled or picked so far (farthest-point sampling: the pool's most novel structures).
        Anything but "random" requires ``fill_new_points=True`` (ValueError otherwise).
    pool_factor : float
        With ``fill_new_points``, sample until ``pool_factor``·``new_points`` uncertain
        structures are pooled (within ``max_sampling_batches``); a pool larger than
        ``new_points`` gives ``selection="farthest"`` something to choose from. Anything but
        1 requires ``fill_new_points=True``.
    min_new_points : int
        Converged when fewer structures than this are uncertain.
    max_iterations : int
    executor : concurrent.futures.Executor, optional
        Where reference calculations run. Default: the shared local pool
        (:func:`ase_al.executors.default_executor`), whose workers never re-run the calling
        script, so no ``if __name__ == "__main__":`` guard is needed, in scripts or notebooks.
    uq : {"physics-informed", "committee"}
        Uncertainty: |E_main − E_aux| of a main (energies + forces) and an auxiliary
        (energies only) model, or the standard deviation of ``committee_size`` models trained
        on different random 80 % subsets.
    vibrations : HarmonicAnalysis or VibrationsData, optional
        Normal modes of ``molecule``, taken as the equilibrium: no optimisation, no frequencies.
    optfreq : str or Calculator, optional
        Method for the optimisation and frequencies instead of the reference.
    initial_data : path, list of Atoms or callable, optional
        The initial data instead of Wigner sampling: labelled structures (an ASE database,
        or Atoms carrying energies and forces) are imported; unlabelled Atoms (or those a
        function ``initial_data()`` returns) are labelled with the reference.
    seed : int
    """

    @strict_keywords
    def __init__(
        self,
        molecule: Atoms,
        reference,
        model="KREG",
        model_kwargs: dict | None = None,
        workdir: str | Path = "al",
        temperature: float = 300.0,
        init_batch: int = 50,
        max_init_points: int = 1000,
        init_rmse: float | None = None,
        sampler=None,
        sampler_kwargs: dict | None = None,
        uq_threshold: float | list[float] | None = None,
        threshold_multiplier: float = 3.0,
        validation_fraction: float = 0.1,
        new_points: int = 100,
        min_new_points: int = 5,
        fill_new_points: bool = False,
        max_sampling_batches: int = 20,
        selection: str = "random",
        pool_factor: float = 1.0,
        max_iterations: int = 20,
        executor=None,
        uq: str = "physics-informed",
        vibrations=None,
        optfreq=None,
        initial_data=None,
        committee_size: int = 4,
        optimize: bool = True,
        seed: int = 0,
        progress: bool | None = None,
        init_temperature: float | None = None,
        initial_conditions=None,
    ):
        check_atoms(molecule)
        self.molecule = molecule.copy()
        self.executor = check_executor(executor)
        self.reference = check_calculator(reference, "reference", self.executor)
        self.optfreq = None if optfreq is None else check_calculator(optfreq, "optfreq")
        self.committee = model if isinstance(model, Committee) else None
        if self.committee is not None:
            model = type(self.committee.members[0])  # its type sizes the initial data
        self.n_states = None
        self.model_kwargs = dict(
            check_type("model_kwargs", model_kwargs, dict, optional=True) or {}
        )
        if isinstance(model, MultiState):
            self.n_states = model.n_states
            self.model_kwargs = {**model.model_kwargs, **self.model_kwargs}
            model = model.model_type
            if uq != "physics-informed":
                raise ValueError("excited-state active learning uses uq='physics-informed'")
            sampler = "surface_hopping" if sampler is None else sampler
            if isinstance(sampler, str) and sampler.lower() in ("batch_md", "md"):
                raise ValueError(
                    f"sampler {sampler!r} propagates one potential energy surface; a "
                    "multistate model samples with 'surface_hopping' (or 'wigner', or a function)"
                )
        sampler = "batch_md" if sampler is None else sampler
        self.model_type = model_class(model) if isinstance(model, str) else model
        self.workdir = Path(check_type("workdir", workdir, (str, os.PathLike)))
        self.temperature = check_number("temperature", temperature, minimum=0.0)
        self.init_temperature = check_number(
            "init_temperature", init_temperature, minimum=0.0, optional=True
        )
        self.init_batch = check_int("init_batch", init_batch, minimum=2)
        self.max_init_points = check_int("max_init_points", max_init_points, minimum=2)
        self.init_rmse = check_number("init_rmse", init_rmse, minimum=0.0, optional=True)
        if not isinstance(sampler, str) and not callable(sampler):
            raise TypeError(f"sampler must be a name or a callable, got {type(sampler).__name__}")
        self.sampler = get_sampler(sampler) if isinstance(sampler, str) else sampler
        sampler_kwargs = check_type("sampler_kwargs", sampler_kwargs, dict, optional=True)
        self.sampler_kwargs = {"n_trajectories": 100, **(sampler_kwargs or {})}
        for old, new in getattr(self.sampler, "renamed_keywords", {}).items():
            renamed(self.sampler_kwargs, old, new, owner="sampler_kwargs")
        self.initial_conditions = initial_conditions
        if isinstance(initial_conditions, (list, tuple)):
            for index, atoms in enumerate(initial_conditions):
                check_atoms(atoms)
                if not same_atoms(atoms, self.molecule.numbers):
                    raise ValueError(
                        f"initial condition {index} does not match the molecule's atoms "
                        "in count, elements or order"
                    )
            self.sampler_kwargs["n_trajectories"] = len(initial_conditions)
        elif initial_conditions is not None:
            check_signature(
                initial_conditions,
                "initial_conditions is called as initial_conditions(n, seed) and returns n "
                "Atoms with momenta",
                1,
                0,
            )
        self.user_threshold = check_threshold(uq_threshold)
        self.threshold_multiplier = check_number(
            "threshold_multiplier", threshold_multiplier, minimum=0.0
        )
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
        self.validation_fraction = validation_fraction
        self.new_points = check_int("new_points", new_points, minimum=1)
        self.min_new_points = check_int("min_new_points", min_new_points, minimum=1)
        self.fill_new_points = bool(fill_new_points)
        self.max_sampling_batches = check_int("max_sampling_batches", max_sampling_batches, 1)
        if selection not in ("random", "farthest"):
            raise ValueError(f"selection must be 'random' or 'farthest', got {selection!r}")
        self.selection = selection
        if pool_factor < 1.0:
            raise ValueError(f"pool_factor must be >= 1, got {pool_factor}")
        if not self.fill_new_points and (selection != "random" or pool_factor != 1.0):
            # one batch of n trajectories never pools more than new_points to choose from
            raise ValueError(
                f"selection={selection!r} and pool_factor={pool_factor} choose among the "
                "structures pooled by fill_new_points=True; pass fill_new_points=True with them"
            )
        self.pool_factor = float(pool_factor)
        self.max_iterations = check_int("max_iterations", max_iterations, minimum=1)
        if uq not in ("physics-informed", "committee"):
            raise ValueError(f"uq must be 'physics-informed' or 'committee', got {uq!r}")
        if uq == "committee" and committee_size < 2:
            raise ValueError("a committee needs committee_size >= 2")
        self.uq = uq
        if vibrations is not None and not isinstance(vibrations, VibrationsData):
            raise TypeError(
                "vibrations must be the result of ase_al.freq or an ase VibrationsData, got "
                f"{type(vibrations).__name__}"
            )
        self.vibrations = vibrations
        self.initial_data = initial_data
        self.committee_size = check_int("committee_size", committee_size, minimum=1)
        self.optimize = optimize
        self.seed = check_int("seed", seed, minimum=0)
        self.rng = np.random.default_rng(seed)
        self.progress = progress
        self._check_model()
        self._check_sampler()
        if isinstance(initial_data, (str, os.PathLike)):
            if not Path(initial_data).exists():
                raise FileNotFoundError(f"initial_data: no such database {str(initial_data)!r}")
        elif isinstance(initial_data, (list, tuple)):
            self._check_initial_structures(initial_data)
        elif initial_data is not None and not callable(initial_data):
            raise TypeError(
                "initial_data must be a database path, a list of Atoms or a function returning "
                f"one, got {type(initial_data).__name__}"
            )

    def _check_model(self) -> None:
        """Build one model now: bad settings or a model outside the contract fail here."""
        if isinstance(self.model_type, Calculator):
            raise TypeError(
                f"model: pass the model's class or name ({type(self.model_type).__name__!r}) "
                "with its settings in model_kwargs, or an untrained Committee/MultiState; "
                "got an instance"
            )
        if not is_trainable(self.model_type):
            raise TypeError(
                f"model {getattr(self.model_type, '__name__', self.model_type)!r} does not fit "
                "the trainable-model contract: a subclass of "
                "ase_al.calculators.TrainableModel with train(images, forces=...), "
                "predict(images), save(path), load(path) and clone()"
            )
        model = self.model_factory()
        check_signature(
            model.train,
            "a trainable model's train(images, forces=True|False) fits it and returns it",
            [],
            forces=True,
        )

    def _check_sampler(self) -> None:
        """The sampler can be called the way the learner calls it, with these sampler_kwargs."""
        kwargs = dict(self.sampler_kwargs)
        n = kwargs.pop("n_trajectories")
        check_int("sampler_kwargs['n_trajectories']", n, minimum=1)
        name = getattr(self.sampler, "__name__", type(self.sampler).__name__)
        if self._samples_wigner():
            check_keywords("the 'wigner' sampler's sampler_kwargs", kwargs, ["n_trajectories"])
            return
        if not takes_any_keyword(self.sampler):
            accepted = set(keyword_names(self.sampler)) - {"model", "initial_conditions"}
            accepted -= {"uq_threshold"}
            check_keywords(
                f"sampler {name!r} (sampler_kwargs)", kwargs, accepted | {"n_trajectories"}
            )
        check_defaults_kind(self.sampler, kwargs, f"sampler_kwargs of {name!r}")
        check_signature(
            self.sampler,
            "a sampler is called as sampler(model, initial_conditions=list[Atoms], "
            "uq_threshold=float, **sampler_kwargs) and returns list[Atoms]",
            None,
            initial_conditions=[],
            uq_threshold=0.0,
            **self._sampler_extras(),
            **kwargs,
        )

    def _samples_wigner(self) -> bool:
        return self.sampler is wigner or getattr(self.sampler, "__name__", "") == "wigner"

    def _sampler_extras(self) -> dict:
        """Where to write trajectories and whether to show progress, for samplers that take
        them (every built-in one; a user's function only if its signature has them)."""
        extras = {}
        for key in ("trajectory_dir", "progress"):
            if key not in self.sampler_kwargs and (
                takes_any_keyword(self.sampler) or key in keyword_names(self.sampler)
            ):
                extras[key] = None
        return extras

    # -- files ---------------------------------------------------------------------
    def _state(self) -> dict:
        path = self.workdir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"iterations": []}

    def _save_state(self, state: dict) -> None:
        with atomic_write(self.workdir / "state.json") as partial:
            partial.write_text(json.dumps(state, indent=1))

    def _db(self):
        return open_database(self.workdir / "labelled.db")

    def labelled(self, **selection) -> list[Atoms]:
        """All labelled structures (optionally selected by key-value pairs), in the order they
        were queued (by uid), whatever order the parallel labelling finished them in: the
        training data, and so the models, do not depend on worker timing."""
        db = self._db()
        rows = sorted(db.select(**selection), key=lambda row: (row.get("uid", ""), row.id))
        return [read_row(row) for row in rows]

    def _label_queue(self, queue: list[Atoms], initial: bool = False, **pairs) -> int:
        """Label the structures of ``queue`` that are not in the database yet; count failures.

        ``initial``: a reference that fails on every structure of a batch of near-equilibrium
        Wigner samples is not a bad geometry but a broken setup (wrong method options, a
        missing program); that stops the run with the first error instead of sampling and
        failing forever. (Structures selected by sampling may all be hard cases; their
        failures are only counted.)
        """
        db = self._db()
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
        if initial and len(todo) >= 3 and len(result.failed) == len(todo):
            raise ReferenceCalculationError(
                f"the reference failed on all {len(todo)} structures of this batch; "
                f"the first error: {result.failed[0][1]}",
                result.failed[0][0],
            )
        return len(result.failed)

    # -- the workflow --------------------------------------------------------------
    def run(self) -> Committee:
        """Run (or resume) active learning; returns the final model as a :class:`Committee`
        (for ``uq="physics-informed"`` its prediction is the main model's), or for a
        multistate model a :class:`~ase_al.calculators.MultiStateCommittee`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.workdir / "al.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        log.addHandler(handler)
        level = log.level  # al.log records INFO for this run; the user's setting comes back
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)
        try:
            equilibrium, vibrations = self._equilibrium()
            state = self._state()
            state["settings"] = self._settings()
            self._save_state(state)
            self._initial_data(equilibrium, vibrations, state)
            return self._iterate(equilibrium, vibrations, state)
        finally:
            log.setLevel(level)
            log.removeHandler(handler)
            handler.close()

    def _settings(self) -> dict:
        """What this run samples with, in ASE units (K, eV, fs), as recorded in state.json."""
        plain = (int, float, str, bool, type(None))
        return {
            "temperature": self.temperature,
            "init_temperature": (
                self.temperature if self.init_temperature is None else self.init_temperature
            ),
            "uq_threshold": self.user_threshold,
            "init_batch": self.init_batch,
            "max_init_points": self.max_init_points,
            "new_points": self.new_points,
            "min_new_points": self.min_new_points,
            "max_iterations": self.max_iterations,
            "sampler": getattr(self.sampler, "__name__", type(self.sampler).__name__),
            "sampler_kwargs": {
                k: v for k, v in self.sampler_kwargs.items() if isinstance(v, plain)
            },
        }

    def _equilibrium(self) -> tuple[Atoms, HarmonicAnalysis]:
        calc = self.optfreq if self.optfreq is not None else self.reference
        calc = methods(calc) if isinstance(calc, str) else calc
        equilibrium, vibrations = equilibrium_and_modes(
            self.molecule, calc, self.workdir, self.optimize, self.vibrations
        )
        log.info("harmonic frequencies / cm-1: %s", np.round(vibrations.frequencies, 1).tolist())
        # models with a reference geometry (KREG's RE descriptor; for a multistate model, every
        # state's model) use the optimised one, as MLatom does, not their default (the
        # lowest-energy training structure, which may change from one iteration to the next)
        if self.model_type.uses_equilibrium and "equilibrium" not in self.model_kwargs:
            reference_geometry = equilibrium.copy()
            reference_geometry.calc = None
            self.model_kwargs["equilibrium"] = reference_geometry
        return equilibrium, vibrations

    def model_factory(self, **hyperparameters):
        """A new, untrained model of the learner's type and settings."""
        if self.committee is not None and not hyperparameters:
            return self.committee.members[0].clone()
        if self.n_states is not None:
            return MultiState(
                model=self.model_type,
                n_states=self.n_states,
                model_kwargs={**self.model_kwargs, **hyperparameters},
            )
        return self.model_type(**{**self.model_kwargs, **hyperparameters})

    def _wigner(self, equilibrium, vibrations, n, tag, temperature=None):
        temperature = self.temperature if temperature is None else temperature
        samples = wigner(equilibrium, vibrations, n, temperature, seed=self.rng.integers(2**32))
        for index, atoms in enumerate(samples):
            atoms.info["uid"] = f"{tag}-{index:06d}"
        return samples

    def _initial_conditions(self, equilibrium, vibrations, n) -> list[Atoms]:
        """Where this batch of sampling trajectories starts (positions and momenta)."""
        if self.initial_conditions is None:
            return self._wigner(equilibrium, vibrations, n, "ic")
        if callable(self.initial_conditions):
            conditions = list(self.initial_conditions(n, int(self.rng.integers(2**32))))
            for index, atoms in enumerate(conditions):
                check_atoms(atoms)
                if not same_atoms(atoms, self.molecule.numbers):
                    raise ValueError(
                        f"initial_conditions returned a structure ({index}) that does not match "
                        "the molecule's atoms in count, elements or order"
                    )
        else:
            conditions = [atoms.copy() for atoms in self.initial_conditions]
        for index, atoms in enumerate(conditions):
            atoms.info["uid"] = f"ic-{index:06d}"
        return conditions

    def _cv_rmse(self, images) -> float:
        """Cross-validation energy RMSE of an energies-only model on ``images`` (eV)."""
        model = self.model_factory()
        model.train(images, forces=False)
        if model.validation_rmse is not None:  # a model that cross-validates while it trains
            return float(model.validation_rmse)
        order = np.random.default_rng(self.seed).permutation(len(images))
        cut = int(0.8 * len(images))
        model = self.model_factory()
        model.train([images[i] for i in order[:cut]], forces=False)
        held = [images[i] for i in order[cut:]]
        key = "energy" if self.n_states is None else "state_energies"
        predicted = model.predict(held, forces=False)[key]
        if self.n_states is not None:  # every state's energies
            reference = multistate_labels(held)[0]
        else:
            reference = np.array([a.get_potential_energy() for a in held])
        return float(np.sqrt(np.mean((predicted - reference) ** 2)))

    def _initial_data(self, equilibrium, vibrations, state) -> None:
        if state.get("initial_data_done"):
            return
        init_dir = self.workdir / "init"
        init_dir.mkdir(exist_ok=True)
        curve = state.setdefault("learning_curve", [])
        failures = state.setdefault("failed", 0)
        if self.initial_data is not None:
            self._import_initial_data()
            state["initial_data_done"] = True
            self._save_state(state)
            return
        batch = len(list(init_dir.glob("batch_*.traj")))
        # a batch queued before a kill is labelled first
        if batch and len(curve) < batch:
            queue = read_traj(init_dir / f"batch_{batch - 1}.traj")
            failures += self._label_queue(queue, initial=True, iteration=0, source="initial wigner")
        while True:
            images = self.labelled(iteration=0)
            if len(curve) < batch and len(images) >= 2:
                curve.append([len(images), self._cv_rmse(images)])
                log.info("initial data: %d points, CV RMSE %.4f eV", *curve[-1])
                state["failed"] = failures
                self._save_state(state)
            if self._enough_initial_data(curve, len(images)):
                break
            queue = self._wigner(
                equilibrium,
                vibrations,
                self.init_batch,
                f"init{batch:03d}",
                self.init_temperature,
            )
            write_traj(init_dir / f"batch_{batch}.traj", queue)
            batch += 1
            failures += self._label_queue(queue, initial=True, iteration=0, source="initial wigner")
        state.update(initial_data_done=True, failed=failures)
        self._save_state(state)
        self._plot_learning_curve(curve)

    def _import_initial_data(self) -> None:
        """The user's initial data into labelled.db: labelled structures (a database path, or
        Atoms carrying energies and forces) are copied; unlabelled ones (from a list or an
        initial-data sampler) are labelled with the reference, resumably."""
        queue_path = self.workdir / "init" / "user.traj"
        if queue_path.exists():  # unlabelled structures queued before a kill
            queue = read_traj(queue_path)
            self._label_queue(queue, initial=True, iteration=0, source="initial user")
            return
        db = self._db()
        if db.count(iteration=0):
            return  # imported before a kill
        source = self.initial_data
        if isinstance(source, (str, os.PathLike)):
            try:
                source = [read_row(row, False) for row in connect(source).select()]
            except Exception as err:
                raise ValueError(
                    f"cannot read initial data from {self.initial_data}: {err}"
                ) from None
        elif callable(source):
            source = list(source())
        labelled = self._check_initial_structures(source)
        if not labelled:
            queue = [atoms.copy() for atoms in source]
            for index, atoms in enumerate(queue):
                atoms.info["uid"] = f"user-{index:06d}"
            write_traj(queue_path, queue)
            self._label_queue(queue, initial=True, iteration=0, source="initial user")
            return
        with db:
            for index, atoms in enumerate(source):
                if self.n_states is not None:
                    atoms = _keep_states(atoms, self.n_states)
                write_row(db, atoms, iteration=0, source="user", uid=f"user-{index:06d}")

    def _check_initial_structures(self, source) -> bool:
        """Check the user's initial data; True if it is labelled, False if all of it needs
        labelling (a mix is an error)."""
        if not isinstance(source, (list, tuple)) or not source:
            raise ValueError(
                "initial data must be a non-empty list of Atoms (or an ASE database path), got "
                f"{type(source).__name__}" + (" of length 0" if not source else "")
            )
        reference_numbers = self.molecule.numbers
        has_labels = []
        for index, atoms in enumerate(source):
            check_atoms(atoms)
            if not same_atoms(atoms, reference_numbers):
                raise ValueError(
                    f"initial data structure {index} does not match the molecule's atoms "
                    "in count, elements or order"
                )
            results = atoms.calc.results if atoms.calc is not None else {}
            has_labels.append("energy" in results)
            if "energy" in results and "forces" not in results:
                raise ValueError(f"initial data structure {index} carries an energy but no forces")
            if "energy" in results and self.n_states is not None:
                if (
                    "state_forces" not in results
                    or len(np.atleast_1d(results.get("state_energies", []))) < self.n_states
                ):
                    raise ValueError(
                        f"initial data structure {index} needs 'state_energies' and 'state_forces' "
                        f"of at least {self.n_states} states"
                    )
        if any(has_labels) and not all(has_labels):
            raise ValueError(
                f"initial data: {sum(has_labels)} of {len(source)} structures carry energies "
                "and forces; give all labelled (imported) or all unlabelled (labelled with the "
                "reference)"
            )
        return all(has_labels)

    def _enough_initial_data(self, curve, n_points) -> bool:
        if n_points >= self.max_init_points:
            return True
        if self.init_rmse is not None and curve and curve[-1][1] <= self.init_rmse:
            return True
        if len(curve) < 5:
            return False
        # power law rmse = a·N^b fitted to the curve: relative change for another batch
        n, rmse = np.log(np.array(curve)).T
        slope = np.polyfit(n, rmse, 1)[0]
        change = 1.0 - ((n_points + self.init_batch) / n_points) ** slope
        return abs(change) < 0.1

    def _train(self, images, iteration_dir: Path) -> tuple[Committee, float | None]:
        """The uncertainty-aware model of this iteration and its validation energy RMSE (eV).

        ``uq="physics-informed"``: main (energies + forces) and auxiliary (energies only)
        model. ``uq="committee"``: ``committee_size`` energies + forces models, each on its own
        random 80 % of the data. Models are saved and, on resume, loaded instead of retrained.
        """
        if self.committee is not None:
            return self._train_committee(images, iteration_dir)
        if self.n_states is not None:
            return self._train_multistate(images, iteration_dir)
        names = (
            ["main", "aux"]
            if self.uq == "physics-informed"
            else [f"member_{i}" for i in range(self.committee_size)]
        )
        extension = self.model_type.file_extension
        paths = [iteration_dir / f"{name}{extension}" for name in names]
        rmse_path = iteration_dir / "validation_rmse.json"
        if all(p.exists() for p in paths):
            models = [self.model_type.load(p) for p in paths]
            rmse = json.loads(rmse_path.read_text()) if rmse_path.exists() else None
        else:
            if self.uq == "physics-informed":
                # a fit to forces chooses its own hyperparameters (KREG: cross-validated over
                # structures); the energies-only ones are too narrow for it (fitted to 255
                # labels of the AL benchmark, test errors 1.86 / 4.38 kcal/mol(/Å) with them,
                # 1.23 / 3.84 with its own)
                main = self.model_factory()
                main.train(images, forces=True)
                aux = self.model_factory()
                aux.train(images, forces=False)
                models = [main, aux]
            else:
                models, hyper = [], {}
                for i in range(self.committee_size):
                    rng = np.random.default_rng([self.seed, i])
                    subset = rng.choice(len(images), int(0.8 * len(images)), replace=False)
                    # the first member searches its hyperparameters, the others reuse them
                    seeded = dict(hyper)
                    if "seed" in accepted_parameters(self.model_type):  # networks: a different
                        seeded["seed"] = self.seed + i  # initialisation each
                    member = self.model_factory(**seeded)
                    member.train([images[j] for j in np.sort(subset)], forces=True)
                    hyper = hyper or member.hyperparameters
                    models.append(member)
            # the validation energy RMSE of the first model that measured one: the main model's
            # (or the first member's) held-out error where its training searched
            # hyperparameters, else the energies-only auxiliary model's
            errors = [m.validation_rmse for m in models]
            rmse = next((float(e) for e in errors if e is not None), None)
            iteration_dir.mkdir(parents=True, exist_ok=True)
            for model, path in zip(models, paths, strict=True):
                model.save(path)
            rmse_path.write_text(json.dumps(rmse))
        if self.uq == "physics-informed":
            return Committee.physics_informed(*models), rmse
        return Committee(models, spread="std"), rmse

    def _train_multistate(self, images, iteration_dir: Path):
        """Main (every state's energies + forces) and auxiliary (energies only) multistate
        models; each state's main model reuses the hyperparameters its auxiliary one found.
        Saved as ``main/`` and ``aux/`` and loaded on resume."""
        paths = [iteration_dir / "main", iteration_dir / "aux"]
        rmse_path = iteration_dir / "validation_rmse.json"
        if all((p / "multistate.json").exists() for p in paths):
            main, aux = (MultiState.load(p) for p in paths)
            rmse = json.loads(rmse_path.read_text()) if rmse_path.exists() else None
        else:
            aux = self.model_factory().train(images, forces=False)
            main = MultiState(
                models=[
                    self.model_type(**{**self.model_kwargs, **model.hyperparameters})
                    for model in aux.models
                ],
                model=self.model_type,
            ).train(images, forces=True)
            rmse = aux.validation_rmse
            for model, path in zip((main, aux), paths, strict=True):
                model.save(path)
            rmse_path.write_text(json.dumps(rmse))
        return MultiStateCommittee.physics_informed(main, aux), rmse

    def _train_committee(self, images, iteration_dir: Path) -> tuple[Committee, float | None]:
        """The user's committee recipe trained on ``images`` (a clone: the recipe stays
        untrained); saved as ``committee/`` and loaded on resume."""
        path = iteration_dir / "committee"
        if (path / "committee.json").exists():
            committee = Committee.load(path)
        else:
            committee = self.committee.clone().train(images)
            committee.save(path)
        return committee, committee.validation_rmse

    def _validation_threshold(self, images, iteration_dir: Path) -> tuple[float, list[str]]:
        """median + multiplier·MAD of the uncertainties on a validation set (MLatom's m+3mad).

        The validation set is a seeded random ``validation_fraction`` of the labelled data; the
        uncertainty-aware model is trained once more on the rest (saved in
        ``iteration_dir/threshold_models``), so that the threshold measures the disagreement on
        structures the models have not seen. The iteration's own models use all the data.
        """
        n_validation = max(int(round(self.validation_fraction * len(images))), 2)
        if len(images) - n_validation < 2:
            raise ValueError(
                f"{len(images)} labelled structures are too few to set the uncertainty "
                "threshold from a validation set; give more initial data or uq_threshold"
            )
        order = np.random.default_rng([self.seed, 7]).permutation(len(images))
        held = [images[i] for i in np.sort(order[:n_validation])]
        subtrain = [images[i] for i in np.sort(order[n_validation:])]
        pair, _ = self._train(subtrain, iteration_dir / "threshold_models")
        key = "energy_uncertainty" if self.n_states is None else "state_uncertainties"
        uncertainties = pair.predict(held, forces=False)[key]
        threshold = _threshold(uncertainties, self.threshold_multiplier)
        if np.min(threshold) < 1e-3:
            message = (
                f"the automatic uncertainty threshold is {_format(threshold)} eV: the models "
                "agree to a fraction of a meV on the validation structures, so nearly every "
                "sampled structure will count as uncertain; consider giving uq_threshold"
            )
            log.warning(message)
            warnings.warn(message, stacklevel=4)  # at the caller of run()
        log.info(
            "uncertainty threshold set to %s eV (median + %g MAD over %d validation structures)",
            _format(threshold),
            self.threshold_multiplier,
            n_validation,
        )
        return threshold, [a.info.get("key_value_pairs", {}).get("uid", "") for a in held]

    def _iterate(self, equilibrium, vibrations, state) -> Committee:
        iterations = state["iterations"]
        if iterations and (state.get("converged") or len(iterations) >= self.max_iterations):
            # a finished run: its final models, loaded (not retrained) where they were saved
            k = len(iterations)
            log.info("run already finished after %d iterations: returning its models", k)
            return self._train(self.labelled(), self.workdir / f"iteration_{k}")[0]
        while True:
            k = len(iterations) + 1
            iteration_dir = self.workdir / f"iteration_{k}"
            images = self.labelled()
            pair, validation_rmse = self._train(images, iteration_dir)
            threshold = state.get("uq_threshold", self.user_threshold)
            if threshold is None:
                threshold, held = self._validation_threshold(images, iteration_dir)
                state.update(uq_threshold=threshold, threshold_validation_uids=held)
                self._save_state(state)
            selected_path = iteration_dir / "selected.traj"
            summary_path = iteration_dir / "sampling.json"
            if selected_path.exists() and summary_path.exists():
                selected = read_traj(selected_path)
                sampled = json.loads(summary_path.read_text())
            else:
                selected, sampled = self._sample_iteration(
                    pair, threshold, equilibrium, vibrations, iteration_dir
                )
                for index, atoms in enumerate(selected):
                    atoms.info["uid"] = f"it{k:03d}-{index:06d}"
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
            converged = sampled["n_uncertain"] < self.min_new_points
            failures = (
                0 if converged else self._label_queue(selected, iteration=k, source="sampler")
            )
            state["failed"] = state.get("failed", 0) + failures
            iterations.append(
                {
                    "iteration": k,
                    "n_train": len(images),
                    "threshold": threshold,
                    "validation_rmse": validation_rmse,
                    "failed": failures,
                    **sampled,
                }
            )
            state["converged"] = converged
            self._save_state(state)
            self._plot_progress(iterations)
            if converged or k >= self.max_iterations:
                log.info("%s after %d iterations", "converged" if converged else "stopped", k)
                return pair

    def _sample_iteration(self, pair, threshold, equilibrium, vibrations, iteration_dir):
        """The structures to label this iteration and a summary of the sampling.

        The first batch decides convergence (``n_uncertain`` < ``min_new_points``). With
        ``fill_new_points`` further batches follow until ``new_points`` uncertain structures
        are pooled (at most ``max_sampling_batches`` batches), and a random ``new_points`` of
        the pool are kept; otherwise the first ``new_points`` of the one batch.
        """
        trajectories = iteration_dir / "trajectories"
        first = self._sample(pair, threshold, equilibrium, vibrations, trajectories)
        for atoms in first:
            atoms.info["sampling_batch"] = 1
        pool = list(first)
        batches = 1
        if self.fill_new_points and len(first) >= self.min_new_points:
            target = int(np.ceil(self.pool_factor * self.new_points))
            while len(pool) < target and batches < self.max_sampling_batches:
                batches += 1
                more = self._sample(
                    pair,
                    threshold,
                    equilibrium,
                    vibrations,
                    iteration_dir / f"trajectories_batch{batches}",
                )
                for atoms in more:
                    atoms.info["sampling_batch"] = batches
                pool += list(more)
            if len(pool) < self.new_points:
                log.warning(
                    "%d uncertain structures after %d sampling batches (new_points = %d)",
                    len(pool),
                    batches,
                    self.new_points,
                )
            if len(pool) > self.new_points:
                if self.selection == "farthest":
                    distances = pair_distances(equilibrium.positions)
                    keep = farthest_points(
                        re_descriptor(np.array([a.positions for a in pool]), distances),
                        re_descriptor(np.array([a.positions for a in self.labelled()]), distances),
                        self.new_points,
                    )
                else:
                    keep = self.rng.choice(len(pool), self.new_points, replace=False)
                pool = [pool[i] for i in np.sort(keep)]
        summary = {
            "n_trajectories": first.n_trajectories,
            "n_certain": first.n_certain,
            "n_uncertain": len(first),
            "sampling_batches": batches,
        }
        return pool[: self.new_points], summary

    def _sample(self, pair, threshold, equilibrium, vibrations, trajectory_dir) -> SamplingResult:
        kwargs = dict(self.sampler_kwargs)
        n = kwargs.pop("n_trajectories")
        if self._samples_wigner():
            samples = self._wigner(equilibrium, vibrations, n, "screen")
            key = "energy_uncertainty" if self.n_states is None else "state_uncertainties"
            u = pair.predict(samples, forces=False)[key]
            uncertain = np.asarray(u > np.asarray(threshold)).reshape(len(samples), -1).any(1)
            return SamplingResult(
                [s for s, x in zip(samples, uncertain, strict=True) if x],
                n_trajectories=n,
                n_certain=int(np.sum(~uncertain)),
            )
        conditions = self._initial_conditions(equilibrium, vibrations, n)
        extras = self._sampler_extras()
        if "trajectory_dir" in extras:
            kwargs["trajectory_dir"] = trajectory_dir
        if "progress" in extras:
            kwargs["progress"] = self.progress
        result = self.sampler(pair, initial_conditions=conditions, uq_threshold=threshold, **kwargs)
        if not isinstance(result, SamplingResult):  # a user function returning list[Atoms]
            result = SamplingResult(result, n_trajectories=len(result), n_certain=0)
        return result

    # -- plots ---------------------------------------------------------------------
    def _plot_learning_curve(self, curve) -> None:
        if not curve:
            return
        from matplotlib.figure import Figure  # no pyplot: the user's backend stays as it is

        n, rmse = np.array(curve).T
        fig = Figure(figsize=(4, 3))
        ax = fig.subplots()
        ax.loglog(n, rmse, "o-")
        ax.set(xlabel="training points", ylabel="CV energy RMSE / eV", title="initial data")
        fig.tight_layout()
        fig.savefig(self.workdir / "learning_curve.png", dpi=100)

    def _plot_progress(self, iterations) -> None:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        k = [it["iteration"] for it in iterations]
        fig = Figure(figsize=(10, 3))
        axes = fig.subplots(1, 3)
        axes[0].plot(k, [it["validation_rmse"] or np.nan for it in iterations], "o-")
        axes[0].set(xlabel="iteration", ylabel="validation energy RMSE / eV")
        axes[1].plot(k, [np.atleast_1d(it["threshold"]) for it in iterations], "o-")
        axes[1].set(xlabel="iteration", ylabel="UQ threshold / eV")
        axes[2].plot(k, [it["n_certain"] / max(it["n_trajectories"], 1) for it in iterations], "o-")
        axes[2].set(xlabel="iteration", ylabel="certain trajectories", ylim=(0, 1.05))
        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        fig.savefig(self.workdir / "progress.png", dpi=100)
