"""Training the uncertainty-aware model of an iteration, through the model contract only.

``uncertainty.kind == "physics-informed"``: a main model (energies + forces) and an auxiliary
one (energies only), MLatom's pair; ``"committee"``: ``committee_size`` energies + forces
models, each on its own random 80 % of the data; a user's untrained
:class:`~ase_al.calculators.Committee`: a clone of it; a multistate model: a main and an
auxiliary :class:`~ase_al.calculators.MultiState`. Models are saved in the iteration's folder
with a ``models.json`` manifest, and loaded (not retrained) on resume.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ase_al.active_learning.selection import format_threshold, threshold_from
from ase_al.calculators._torch import index_draws
from ase_al.calculators.committee import Committee
from ase_al.calculators.multistate import MultiState, MultiStateCommittee, multistate_labels
from ase_al.files import atomic_write

log = logging.getLogger("ase_al")


@dataclass
class Plan:
    """What the learner trains: ``factory(**changes)`` gives an untrained model of its type
    and settings (``changes``: hyperparameters, a seed)."""

    factory: Callable
    kind: str
    committee_size: int
    seed: int
    n_states: int | None = None
    recipe: Committee | None = None
    #: the reference geometry of RE descriptors (the distance and variance kinds)
    equilibrium: object = None
    #: continue each iteration's networks from the previous iteration's weights
    warm_start: bool = False
    #: fit the networks of a pair or committee at once in worker processes
    #: (:func:`fit_all`); False runs them one after the other in this process
    concurrent: bool = True

    @property
    def uq_function(self):
        """The user's uncertainty function, for a run with a callable kind (else None)."""
        return self.kind if callable(self.kind) else None

    @property
    def single(self) -> bool:
        """One main model with an uncertainty estimator beside it."""
        return self.kind in ("variance", "distance") or callable(self.kind)


class ModelRecipe:
    """What the learner's models are made from, checked when it is built (one model is
    built now, so that bad settings fail before any work).

    ``model``: a name, a :class:`~ase_al.calculators.TrainableModel` class, an untrained
    instance (its settings are copied), an untrained :class:`Committee` (the whole
    uncertainty-aware model) or an untrained :class:`MultiState` (excited-state learning);
    ``kwargs``: settings for models built from a name or class.
    """

    def __init__(self, model, kwargs: dict, kind: str, seed: int):
        from ase.calculators.calculator import Calculator

        from ase_al.calculators import model_class
        from ase_al.calculators.base import is_trainable
        from ase_al.options import check_signature

        self.kind = kind
        self.committee = model if isinstance(model, Committee) else None
        self.n_states = model.n_states if isinstance(model, MultiState) else None
        self.template = None
        self.seed = seed
        if isinstance(model, str):
            model = model_class(model)
        if isinstance(model, MultiState):
            if kind != "physics-informed":
                raise ValueError(
                    "excited-state active learning uses the physics-informed pair, not "
                    f"uncertainty {getattr(kind, '__name__', kind)!r}"
                )
            kwargs = {**model.model_kwargs, **kwargs}
            model = model.model_type
        elif isinstance(model, Committee):
            if kind != "physics-informed":
                raise ValueError(
                    "an untrained Committee as the model is its own uncertainty (its spread); "
                    "leave the uncertainty kind at its default"
                )
            if any(m.is_trained for m in model.members if is_trainable(m)):
                raise ValueError("model: give an untrained Committee (a recipe)")
            model = type(model.members[0])
        elif isinstance(model, Calculator):
            if not is_trainable(model):
                raise TypeError(
                    f"model {type(model).__name__} is not a trainable model "
                    "(ase_al.calculators.TrainableModel)"
                )
            if model.is_trained:
                raise ValueError("model: give an untrained model (its settings are copied)")
            self.template = model
            model = type(model)
        if not is_trainable(model):
            raise TypeError(
                f"model {getattr(model, '__name__', model)!r} does not fit the trainable-model "
                "contract: a subclass of ase_al.calculators.TrainableModel with "
                "train(images, forces=...), predict(images), save(path), load(path), clone()"
            )
        self.model_type = model
        self.kwargs = dict(kwargs)
        check_signature(
            self.build().train,
            "a trainable model's train(images, forces=True|False) fits it and returns it",
            [],
            forces=True,
        )

    def check_warm_start(self) -> None:
        """Refuse ``warm_start`` (before any work) where it cannot apply: a model whose
        ``train`` takes no ``warm_start``, or a kind other than the pair and committee."""
        from ase_al.options import keyword_names, takes_any_keyword

        pair_or_committee = self.kind in ("physics-informed", "committee")
        if self.committee is not None or self.n_states is not None or not pair_or_committee:
            raise ValueError(
                "warm_start continues the physics-informed pair or a committee of networks; "
                "it is not available with this model or uncertainty kind"
            )
        train = self.build().train
        if "warm_start" not in keyword_names(train) and not takes_any_keyword(train):
            raise TypeError(
                f"warm_start: {self.model_type.__name__} cannot continue from its weights (its "
                "train() takes no warm_start); networks such as ANI and MACE can"
            )

    def build(self, _member: int | None = None, **changes):
        """A new, untrained model (``changes``: e.g. hyperparameters to reuse; ``_member``: a
        committee member's index, which varies the seed of models that take one)."""
        from ase_al.options import accepted_parameters

        if _member is not None and "seed" in accepted_parameters(self.model_type):
            changes.setdefault("seed", self.seed + _member)
        if self.committee is not None and not changes:
            return self.committee.members[0].clone()
        if self.n_states is not None:
            return MultiState(
                model=self.model_type,
                n_states=self.n_states,
                model_kwargs={**self.kwargs, **changes},
            )
        if self.template is not None:
            return self.template.clone(**{**self.kwargs, **changes})
        return self.model_type(**{**self.kwargs, **changes})


def _class_path(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str):
    module, _, name = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"cannot import the model class {path} to load it: {err}") from None
    return obj


def _write_manifest(folder: Path, manifest: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "models.json") as partial:
        partial.write_text(json.dumps(manifest, indent=1))


def load_models(folder: Path, function=None):
    """The uncertainty-aware model saved in ``folder`` (None if it was not saved);
    ``function``: the uncertainty function of a run with a callable kind."""
    path = Path(folder) / "models.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    kind = manifest["kind"]
    if kind == "uncertain":
        from ase_al.calculators.uncertain import UncertainModel

        return UncertainModel.load(folder / manifest["files"][0], function=function)
    if kind == "recipe":
        return Committee.load(folder / manifest["files"][0])
    if kind == "multistate":
        main, aux = (MultiState.load(folder / name) for name in manifest["files"])
        return MultiStateCommittee.physics_informed(main, aux)
    cls = _import_class(manifest["class"])
    models = [cls.load(folder / name) for name in manifest["files"]]
    if kind == "physics-informed":
        return Committee.physics_informed(*models)
    return Committee(models, spread="std")


def _previous_models(plan: Plan, previous: Path | None, names: list[str]) -> list | None:
    """The models of the previous iteration's folder to continue from (``plan.warm_start``),
    or None (no warm start, the first iteration, or another layout)."""
    if not plan.warm_start or previous is None:
        return None
    earlier = load_models(previous)
    if not isinstance(earlier, Committee) or len(earlier.members) != len(names):
        return None
    return list(earlier.members)


def train_models(plan: Plan, images, folder: Path, previous: Path | None = None):
    """The uncertainty-aware model of this iteration and its held-out energy RMSE (eV);
    ``previous``: the folder of the previous iteration's models (continued from with
    ``plan.warm_start``)."""
    folder = Path(folder)
    loaded = load_models(folder, plan.uq_function)
    rmse_path = folder / "validation_rmse.json"
    if loaded is not None:
        rmse = json.loads(rmse_path.read_text()) if rmse_path.exists() else None
        return loaded, rmse
    if plan.recipe is not None:
        committee = plan.recipe.clone().train(images)
        committee.save(folder / "committee")
        rmse_path.write_text(json.dumps(committee.validation_rmse))
        _write_manifest(folder, {"kind": "recipe", "files": ["committee"]})
        return committee, committee.validation_rmse
    if plan.n_states is not None:
        aux = plan.factory().train(images, forces=False)
        # each state's main model reuses the hyperparameters its auxiliary one found
        main = MultiState(
            models=[m.clone(**m.hyperparameters) for m in aux.models], model=type(aux.models[0])
        ).train(images, forces=True)
        for model, name in ((main, "main"), (aux, "aux")):
            model.save(folder / name)
        rmse = aux.validation_rmse
        rmse_path.write_text(json.dumps(rmse))
        _write_manifest(folder, {"kind": "multistate", "files": ["main", "aux"]})
        return MultiStateCommittee.physics_informed(main, aux), rmse
    if plan.single:
        model = train_single(plan, images)
        model.save(folder / "uncertain")
        rmse = model.validation_rmse
        rmse_path.write_text(json.dumps(rmse))
        _write_manifest(folder, {"kind": "uncertain", "files": ["uncertain"]})
        return model, rmse
    if plan.kind == "physics-informed":
        # a fit to forces chooses its own hyperparameters (KREG: cross-validated over
        # structures); the energies-only ones are too narrow for it (fitted to 255 labels of
        # the AL benchmark, test errors 1.86 / 4.38 kcal/mol(/Å) with them, 1.23 / 3.84 with
        # its own)
        names = ["main", "aux"]
        earlier = _previous_models(plan, previous, names)
        if earlier is not None:
            log.info("warm start: continuing from %s", previous)
            models = fit_all(
                [
                    (earlier[0], images, {"forces": True, "warm_start": True}),
                    (earlier[1], images, {"forces": False, "warm_start": True}),
                ],
                plan.concurrent,
            )
        else:
            models = fit_all(
                [
                    (plan.factory(), images, {"forces": True}),
                    (plan.factory(), images, {"forces": False}),
                ],
                plan.concurrent,
            )
    else:
        names = [f"member_{i}" for i in range(plan.committee_size)]
        earlier = _previous_models(plan, previous, names)
        if earlier is not None:
            log.info("warm start: continuing from %s", previous)
        subsets = []
        for i in range(plan.committee_size):
            if plan.warm_start:  # per structure index: a member's data grow by appending
                subset = np.flatnonzero(index_draws(len(images), plan.seed, i) < 0.8)
            else:
                rng = np.random.default_rng([plan.seed, i])
                subset = np.sort(rng.choice(len(images), int(0.8 * len(images)), replace=False))
            subsets.append([images[j] for j in subset])
        if earlier is not None:
            models = fit_all(
                [(m, sub, {"warm_start": True}) for m, sub in zip(earlier, subsets, strict=True)],
                plan.concurrent,
            )
        else:
            # the first member searches its hyperparameters, the others reuse them;
            # networks get a different initialisation each
            first = plan.factory(_member=0).train(subsets[0], forces=True)
            hyper = first.hyperparameters
            models = [first] + fit_all(
                [
                    (plan.factory(**hyper, _member=i), subsets[i], {"forces": True})
                    for i in range(1, plan.committee_size)
                ],
                plan.concurrent,
            )
    # the held-out energy RMSE of the first model that measured one: the main model's (or
    # the first member's) where its training searched hyperparameters, else the auxiliary's
    errors = [m.validation_rmse for m in models]
    rmse = next((float(e) for e in errors if e is not None), None)
    folder.mkdir(parents=True, exist_ok=True)
    files = [f"{name}{type(models[0]).file_extension}" for name in names]
    for model, name in zip(models, files, strict=True):
        model.save(folder / name)
    rmse_path.write_text(json.dumps(rmse))
    _write_manifest(
        folder, {"kind": plan.kind, "class": _class_path(type(models[0])), "files": files}
    )
    if plan.kind == "physics-informed":
        return Committee.physics_informed(*models), rmse
    return Committee(models, spread="std"), rmse


def fit_all(jobs, concurrent: bool = True) -> list:
    """Each ``(model, images, settings)`` of ``jobs`` trained (``model.train(images,
    **settings)``), the trained models in order.

    Torch networks on the CPU (ANI, MACE) are fitted at once, one worker process each from
    :func:`ase_al.executors.default_executor`, each with its share of the cores for torch's
    threads (unless the model sets ``threads``): their batches of a few small molecules
    keep a second thread mostly idle. On two cores, the ANI pair of a Diels-Alder run
    (600 structures of 16 atoms) took 12.1 s for 12 epochs side by side, against 15.0 s
    plus 5.6 s one after the other with two threads each (the main network alone: 13.4 s
    on one thread). The workers' log records (a warm start that kept its starting weights)
    are logged here. Other models, a single job, one core or ``concurrent=False``: one
    after the other, in this process.
    """
    import os

    from ase_al.calculators._torch import TorchPotential

    jobs = list(jobs)
    cores = os.cpu_count() or 1
    if not (
        concurrent
        and len(jobs) > 1
        and cores > 1
        and all(isinstance(m, TorchPotential) and m.device.type == "cpu" for m, _, _ in jobs)
    ):
        return [model.train(images, **settings) for model, images, settings in jobs]
    from ase_al.executors import default_executor

    threads = max(1, cores // len(jobs))
    executor = default_executor()
    futures = [
        executor.submit(_fit_in_worker, model, images, settings, threads)
        for model, images, settings in jobs
    ]
    trained = []
    for future in futures:
        model, records = future.result()
        for level, message in records:
            log.log(level, "%s", message)
        trained.append(model)
    return trained


def _fit_in_worker(model, images, settings: dict, threads: int):
    """In a worker process: ``model`` trained (torch on ``threads`` threads unless it sets
    its own, no progress bar), with the (level, message) of what it logged."""
    records: list[tuple[int, str]] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append((record.levelno, record.getMessage()))

    handler = Collect(level=logging.INFO)
    logger = logging.getLogger("ase_al")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    own = model.threads
    if own is None:
        model.threads = threads
    try:
        model.train(images, progress=False, **settings)
    finally:
        model.threads = own
        logger.removeHandler(handler)
        logger.setLevel(level)
    return model, records


def train_single(plan: Plan, images):
    """The main model (energies + forces) with the estimator of ``plan.kind`` beside it."""
    from ase_al.calculators.kreg import KREG
    from ase_al.calculators.uncertain import (
        FunctionUncertainty,
        NearestDistance,
        PosteriorStd,
        UncertainModel,
    )

    main = plan.factory().train(images, forces=True)
    if plan.kind == "variance":
        # a KREG model's energies-only twin (MLatom's auxiliary model), else a KREG beside it
        gp = plan.factory() if isinstance(main, KREG) else KREG(equilibrium=plan.equilibrium)
        estimator = PosteriorStd(gp.train(images, forces=False))
    elif plan.kind == "distance":
        estimator = NearestDistance.fit(main, images, plan.equilibrium)
    else:
        estimator = FunctionUncertainty(plan.kind)
    return UncertainModel(main, estimator)


def cross_validation_rmse(plan: Plan, images, seed: int) -> float:
    """Cross-validation energy RMSE (eV) of an energies-only model on ``images``: the
    model's own (KREG: leave-one-out) where its training measures one, else 80/20."""
    model = plan.factory()
    model.train(images, forces=False)
    if model.validation_rmse is not None:
        return float(model.validation_rmse)
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(0.8 * len(images))
    model = plan.factory()
    model.train([images[i] for i in order[:cut]], forces=False)
    held = [images[i] for i in order[cut:]]
    key = "energy" if plan.n_states is None else "state_energies"
    predicted = model.predict(held, forces=False)[key]
    if plan.n_states is not None:  # every state's energies
        reference = multistate_labels(held)[0]
    else:
        reference = np.array([a.get_potential_energy() for a in held])
    return float(np.sqrt(np.mean((predicted - reference) ** 2)))


def validation_threshold(plan: Plan, images, folder: Path, multiplier, fraction, seed, floor):
    """median + multiplier·MAD of the uncertainties on a validation set (MLatom's m+3mad),
    raised to ``floor`` (eV) where it is lower; the uids of that set; the measured value.

    The validation set is a seeded random ``fraction`` of the labelled data; the
    uncertainty-aware model is trained once more on the rest (saved in
    ``folder/threshold_models``), so that the threshold measures the disagreement on
    structures the models have not seen. The iteration's own models use all the data.
    """
    n_validation = max(int(round(fraction * len(images))), 2)
    if len(images) - n_validation < 2:
        raise ValueError(
            f"{len(images)} labelled structures are too few to set the uncertainty threshold "
            "from a validation set; give more initial data or a threshold"
        )
    order = np.random.default_rng([seed, 7]).permutation(len(images))
    held = [images[i] for i in np.sort(order[:n_validation])]
    subtrain = [images[i] for i in np.sort(order[n_validation:])]
    pair, _ = train_models(plan, subtrain, Path(folder) / "threshold_models")
    key = "energy_uncertainty" if plan.n_states is None else "state_uncertainties"
    measured = threshold_from(pair.predict(held, forces=False)[key], multiplier)
    log.info(
        "uncertainty threshold set to %s eV (median + %g MAD over %d validation structures)",
        format_threshold(measured),
        multiplier,
        n_validation,
    )
    threshold = np.maximum(measured, floor)
    threshold = float(threshold) if np.ndim(threshold) == 0 else [float(t) for t in threshold]
    if np.any(np.asarray(measured) < floor):
        # the models agree better than what matters: with the measured value nearly every
        # sampled structure would count as uncertain and be labelled for nothing
        log.info(
            "uncertainty threshold raised to %s eV: uncertainties below %.5f eV (the target "
            "error, or 0.1 kcal/mol) do not matter",
            format_threshold(threshold),
            floor,
        )
    uids = [a.info.get("key_value_pairs", {}).get("uid", "") for a in held]
    return threshold, uids, measured


__all__ = [
    "ModelRecipe",
    "Plan",
    "cross_validation_rmse",
    "load_models",
    "train_models",
    "train_single",
    "validation_threshold",
]
