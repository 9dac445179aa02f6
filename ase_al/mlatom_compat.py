"""MLatom's ``ml.al(...)`` keywords on top of :class:`~ase_al.ActiveLearner`.

An MLatom user's script keeps its structure::

    sampler_kwargs = {
        "initcond_sampler": "wigner",
        "initcond_sampler_kwargs": {"molecule": optmol, "number_of_initial_conditions": 100,
                                    "initial_temperature": 300},
        "maximum_propagation_time": 100.0, "time_step": 0.5,
        "uq_threshold": 0.000001,          # Hartree, as in MLatom
    }
    ase_al.al(molecule=optmol, ml_model="KREG", sampler_kwargs=sampler_kwargs,
              min_new_points=5, reference_method="B3LYP/6-31G*")

Every MLatom keyword is translated explicitly by the tables below (:data:`AL_KEYWORDS`,
:data:`SAMPLER_KEYWORDS`, :data:`INITIAL_CONDITION_KEYWORDS`); MLatom keywords that ase-al
does not implement raise a ``ValueError`` saying so, and anything else unknown a
``TypeError`` with the accepted names. Everything is checked before the first reference
calculation. ase-al's own :class:`~ase_al.ActiveLearner` names are accepted as well.
"""

from __future__ import annotations

from collections.abc import Callable

from ase import Atoms, units

from ase_al.options import check_keywords, keyword_names

#: MLatom's top-level ``ml.al`` keyword -> (ase-al's name, what changes on the way)
AL_KEYWORDS: dict[str, tuple[str, str]] = {
    "molecule": ("molecule", "an ase.Atoms; optimised with the reference (or optfreq) first"),
    "reference_method": ("reference", "a method name for methods() or an ASE calculator"),
    "ml_model": ("model", "'KREG', 'ANI', 'MACE', a model class, a Committee or MultiState"),
    "ml_model_type": ("model", "as ml_model"),
    "ml_model_kwargs": ("model_kwargs", "the model class's own parameters"),
    "ml_models_kwargs": ("model_kwargs", "as ml_model_kwargs"),
    "sampler": ("Sampling.sampler", "'batch_md', 'md', 'wigner', 'lzsh' -> 'surface_hopping'"),
    "sampler_kwargs": ("Sampling", "translated by the sampler table"),
    "initdata_sampler": (
        "InitialData.structures",
        "'wigner' (default: Wigner batches grown by the learning-curve rule) or a callable "
        "f(**initdata_sampler_kwargs) -> list[Atoms], which are labelled as the initial data",
    ),
    "initdata_sampler_kwargs": (
        "InitialData.batch, .temperature",
        "number_of_initial_conditions: structures per batch; initial_temperature: K; "
        "molecule: the run's molecule",
    ),
    "initial_points_refinement": (
        "InitialData.max_points",
        "'cross-validation' or 'validation': batches until the learning curve flattens "
        "(ase-al's rule); 'one-shot': one batch (max_points = batch)",
    ),
    "init_RMSE_threshold": ("InitialData.rmse", "Hartree -> eV"),
    "initial_dataset": ("InitialData.structures", "a list of Atoms or an ASE database path"),
    "new_points": ("Selection.new_points", "same meaning"),
    "min_new_points": ("Selection.min_new_points", "same meaning"),
    "max_iterations": ("Selection.max_iterations", "same meaning"),
    "validation_set_fraction": ("Uncertainty.validation_fraction", "same meaning"),
    "working_directory": ("workdir", "the run's folder (MLatom: the current folder)"),
    "job_name": ("workdir", "the run's folder, when working_directory is not given"),
    "label_nthreads": ("executor", "a local pool with this many worker processes"),
    "nthreads": ("executor", "as label_nthreads"),
}

#: MLatom's ``sampler_kwargs`` keyword -> (ase-al's name, what changes on the way)
SAMPLER_KEYWORDS: dict[str, tuple[str, str]] = {
    "initcond_sampler": (
        "Sampling.initial_conditions",
        "'wigner' (default), a list of Atoms with momenta (used every iteration), or a "
        "callable f(**initcond_sampler_kwargs) -> list[Atoms] with momenta",
    ),
    "initcond_sampler_kwargs": ("Sampling.temperature, .n_trajectories", "see the next table"),
    "maximum_propagation_time": ("Sampling.options['max_time_fs']", "fs, same"),
    "time_step": ("Sampling.options['time_step_fs']", "fs, same"),
    "uq_threshold": (
        "Uncertainty.threshold",
        "Hartree -> eV (× 27.211386); fixed for the whole run",
    ),
    "number_of_trajectories": ("Sampling.n_trajectories", "same meaning"),
    "nthreads": ("executor", "as label_nthreads"),
}

#: MLatom's ``initcond_sampler_kwargs`` / ``initdata_sampler_kwargs`` keyword -> ase-al's
INITIAL_CONDITION_KEYWORDS: dict[str, tuple[str, str]] = {
    "molecule": ("molecule", "the equilibrium to sample around: must be the run's molecule"),
    "generation_method": ("", "'wigner' only"),
    "number_of_initial_conditions": (
        "Sampling.n_trajectories / InitialData.batch",
        "trajectories per iteration (initcond) or structures per initial batch (initdata)",
    ),
    "initial_temperature": ("Sampling.temperature / InitialData.temperature", "K, same"),
    "use_hessian": ("", "accepted: ase-al's Wigner sampling always uses the Hessian's modes"),
    "random_seed": ("seed", "the learner's seed"),
}

#: MLatom keywords ase-al does not implement: using one is an error, not a silent no-op
NOT_SUPPORTED = {
    "init_ncvsplits": "ase-al's initial-data rule uses the model's own cross-validation",
    "init_validation_set_fraction": "ase-al's initial-data rule uses cross-validation",
    "init_train_energies_only": "the initial-data learning curve always fits energies only",
    "minimum_number_of_fitting_points": "the learning-curve rule fits after 5 batches",
    "init_ntrain_next": "the learning-curve rule looks one init_batch ahead",
    "init_sampling_only": "run ActiveLearner(..., max_iterations=1) or stop after the data",
    "ml_model_trainer": "models train themselves (train(images, forces=...))",
    "collective_ml_models": "pass a Committee as ml_model",
    "property_to_learn": "energies and forces are learnt",
    "property_to_check": "the energy uncertainty is checked",
    "uncertainty_quantification": "use uq='physics-informed' or uq='committee'",
    "reuse_previous_model": "models are retrained from scratch each iteration",
    "train_model_from_scratch_interval": "models are retrained from scratch each iteration",
    "device": "give the model's device in ml_model_kwargs (ANI/MACE: device='cuda')",
    "refmethod_kwargs": "give the reference's options to methods(..., **options)",
    "baseline_method": "use model='Composite' with model_kwargs={'baseline': ...}",
    "baseline_method_kwargs": "use model='Composite' with model_kwargs={'baseline': ...}",
    "debug": "",
}


def _unsupported(name: str, where: str) -> ValueError:
    why = NOT_SUPPORTED.get(name, "")
    return ValueError(
        f"{where}: MLatom's {name!r} is not supported by ase-al" + (f" ({why})" if why else "")
    )


def _number_of_workers(n) -> object:
    from ase_al.executors import default_executor
    from ase_al.options import check_int

    return default_executor(check_int("nthreads", n, minimum=1))


def _wigner_kwargs(kwargs: dict, where: str) -> dict:
    """Check an MLatom Wigner sampler's keywords; return the ones ase-al uses."""
    kwargs = dict(kwargs)
    for name in kwargs:
        if name in NOT_SUPPORTED:
            raise _unsupported(name, where)
    check_keywords(where, kwargs, INITIAL_CONDITION_KEYWORDS)
    method = kwargs.pop("generation_method", "wigner")
    if str(method).lower() != "wigner":
        raise ValueError(f"{where}: generation_method {method!r} is not supported ('wigner' only)")
    kwargs.pop("use_hessian", None)
    return kwargs


def _apply_wigner(kwargs: dict, where: str, out: dict, counts: dict, count: str, temperature: str):
    """An MLatom Wigner sampler's keywords into ``out``: its molecule (checked against the
    run's), ``number_of_initial_conditions`` as ``counts[count]``, ``initial_temperature`` as
    ``out[temperature]``, ``random_seed`` as the seed."""
    kwargs = _wigner_kwargs(kwargs, where)
    if "molecule" in kwargs:
        molecule = kwargs.pop("molecule")
        if "molecule" in out:
            _same_molecule(molecule, out["molecule"], where)
        out["molecule"] = molecule
    if "number_of_initial_conditions" in kwargs:
        counts[count] = kwargs.pop("number_of_initial_conditions")
    if "initial_temperature" in kwargs:
        out[temperature] = kwargs.pop("initial_temperature")
    if "random_seed" in kwargs:
        out["seed"] = kwargs.pop("random_seed")


def _call_with(func: Callable, kwargs: dict, contract: str) -> Callable:
    """``func(**kwargs)`` as a function of the learner's ``(n, seed)``, signature checked."""
    from ase_al.options import check_signature

    check_signature(func, contract, **kwargs)

    def call(*_):  # the learner's (n, seed) are the user's kwargs here
        return func(**kwargs)

    return call


def _same_molecule(a: Atoms, b: Atoms, where: str) -> None:
    from ase_al.errors import same_atoms

    if not isinstance(a, Atoms):
        raise TypeError(f"{where}['molecule'] must be an ase.Atoms, got {type(a).__name__}")
    if not same_atoms(a, b.numbers) or abs(a.positions - b.positions).max() > 1e-6:
        raise ValueError(
            f"{where}['molecule'] differs from the molecule of the run: ase-al samples "
            "around the reference-optimised geometry of the run's molecule; give the same "
            "molecule, or your own initial conditions as a list of Atoms"
        )


def translate(kwargs: dict) -> dict:
    """ActiveLearner keyword arguments for MLatom-style ``ml.al`` keyword arguments
    (ase-al's own names pass through). Raises before any work on anything unknown."""
    from ase_al.active_learning import ActiveLearner
    from ase_al.active_learning.settings import LEGACY

    # ase-al's own names: the learner's parameters and its first-release flat keywords
    learner_names = set(keyword_names(ActiveLearner.__init__)) - {"self", "legacy"}
    learner_names |= set(LEGACY) | {"sampler_kwargs", "model_kwargs"}
    kwargs = dict(kwargs)
    for name in kwargs:
        if name in NOT_SUPPORTED:
            raise _unsupported(name, "al()")
    check_keywords("al()", kwargs, set(AL_KEYWORDS) | learner_names)
    out = {k: v for k, v in kwargs.items() if k in learner_names}
    rename = {
        "reference_method": "reference",
        "ml_model": "model",
        "ml_model_type": "model",
        "ml_model_kwargs": "model_kwargs",
        "ml_models_kwargs": "model_kwargs",
        "working_directory": "workdir",
        "validation_set_fraction": "validation_fraction",
        "initial_dataset": "initial_data",
    }
    for mlatom, ours in rename.items():
        if mlatom in kwargs:
            if ours in out:
                raise TypeError(f"al() got both {mlatom!r} and {ours!r}: give one")
            out[ours] = kwargs[mlatom]
    if "job_name" in kwargs and "workdir" not in out:
        out["workdir"] = kwargs["job_name"]
    for name in ("label_nthreads", "nthreads"):
        if name in kwargs:
            out["executor"] = _number_of_workers(kwargs[name])
    if isinstance(out.get("sampler"), str):
        out["sampler"] = {"lzsh": "surface_hopping"}.get(out["sampler"].lower(), out["sampler"])

    # initial data: the sampler, its count and temperature, the refinement rule
    init_kwargs = dict(kwargs.get("initdata_sampler_kwargs") or {})
    init_sampler = kwargs.get("initdata_sampler", "wigner")
    if isinstance(init_sampler, str):
        if init_sampler.lower() != "wigner":
            raise ValueError(
                f"initdata_sampler {init_sampler!r} is not supported: 'wigner', or a callable "
                "returning the structures to label"
            )
        _apply_wigner(
            init_kwargs, "initdata_sampler_kwargs", out, out, "init_batch", "init_temperature"
        )
    elif callable(init_sampler):
        if "initial_data" in out:
            raise TypeError("al() got both initdata_sampler and initial_dataset: give one")
        out["initial_data"] = _call_with(
            init_sampler,
            init_kwargs,
            "initdata_sampler is called as initdata_sampler(**initdata_sampler_kwargs) and "
            "returns the list[Atoms] to label",
        )
    else:
        raise TypeError(
            f"initdata_sampler must be 'wigner' or a callable, got {type(init_sampler).__name__}"
        )
    refinement = kwargs.get("initial_points_refinement", "cross-validation")
    if str(refinement).lower() == "one-shot":
        out["max_init_points"] = out.get("init_batch", 50)
    elif str(refinement).lower() not in ("cross-validation", "validation"):
        raise ValueError(
            f"initial_points_refinement {refinement!r}: 'cross-validation', 'validation' or "
            "'one-shot'"
        )
    if kwargs.get("init_RMSE_threshold") is not None:
        out["init_rmse"] = kwargs["init_RMSE_threshold"] * units.Hartree

    # the sampler's keywords
    sampler_kwargs = dict(kwargs.get("sampler_kwargs") or {})
    for name in list(sampler_kwargs):
        if name in NOT_SUPPORTED:
            raise _unsupported(name, "sampler_kwargs")
    if "number_of_trajectories" in sampler_kwargs:
        sampler_kwargs["n_trajectories"] = sampler_kwargs.pop("number_of_trajectories")
    for mlatom, ours in (
        ("maximum_propagation_time", "max_time_fs"),
        ("time_step", "time_step_fs"),
    ):
        if mlatom in sampler_kwargs:
            sampler_kwargs[ours] = sampler_kwargs.pop(mlatom)
    if "nthreads" in sampler_kwargs:
        out.setdefault("executor", _number_of_workers(sampler_kwargs.pop("nthreads")))
    if "uq_threshold" in sampler_kwargs:
        if out.get("uq_threshold") is not None:
            raise TypeError(
                "al() got uq_threshold twice: in sampler_kwargs (MLatom's, Hartree) and at "
                "the top level (ase-al's, eV); give one"
            )
        threshold = sampler_kwargs.pop("uq_threshold")
        from ase_al.options import check_number

        if isinstance(threshold, (list, tuple)):
            out["uq_threshold"] = [
                check_number("uq_threshold", t) * units.Hartree for t in threshold
            ]
        elif threshold is not None:
            out["uq_threshold"] = check_number("uq_threshold", threshold) * units.Hartree
    ic_sampler = sampler_kwargs.pop("initcond_sampler", "wigner")
    ic_kwargs = dict(sampler_kwargs.pop("initcond_sampler_kwargs", None) or {})
    if isinstance(ic_sampler, str):
        if ic_sampler.lower() != "wigner":
            raise ValueError(
                f"initcond_sampler {ic_sampler!r} is not supported: 'wigner', a list of Atoms "
                "with momenta, or a callable returning them"
            )
        _apply_wigner(
            ic_kwargs,
            "initcond_sampler_kwargs",
            out,
            sampler_kwargs,
            "n_trajectories",
            "temperature",
        )
    elif isinstance(ic_sampler, (list, tuple)) or (
        hasattr(ic_sampler, "__iter__") and not callable(ic_sampler)
    ):
        if ic_kwargs:
            raise TypeError("initcond_sampler_kwargs go with a sampler, not a list of Atoms")
        out["initial_conditions"] = list(ic_sampler)
    elif callable(ic_sampler):
        out["initial_conditions"] = _call_with(
            ic_sampler,
            ic_kwargs,
            "initcond_sampler is called as initcond_sampler(**initcond_sampler_kwargs) and "
            "returns a list[Atoms] with momenta",
        )
        if "number_of_initial_conditions" in ic_kwargs:
            sampler_kwargs.setdefault("n_trajectories", ic_kwargs["number_of_initial_conditions"])
    else:
        raise TypeError(
            "initcond_sampler must be 'wigner', a list of Atoms or a callable, got "
            f"{type(ic_sampler).__name__}"
        )
    if "sampler_kwargs" in kwargs or sampler_kwargs:
        out["sampler_kwargs"] = sampler_kwargs
    return out


def keyword_table() -> str:
    """The MLatom → ase-al keyword tables as Markdown (the docs print this)."""
    lines = ["| MLatom `ml.al` keyword | ase-al | notes |", "|---|---|---|"]
    for table, prefix in (
        (AL_KEYWORDS, ""),
        (SAMPLER_KEYWORDS, "sampler_kwargs: "),
        (INITIAL_CONDITION_KEYWORDS, "initcond/initdata_sampler_kwargs: "),
    ):
        for name, (ours, note) in table.items():
            lines.append(f"| {prefix}`{name}` | {f'`{ours}`' if ours else ''} | {note} |")
    return "\n".join(lines)


def al(molecule: Atoms | None = None, reference_method=None, ml_model="KREG", **kwargs):
    """Active learning with MLatom's ``ml.al`` keywords: ``al(molecule=..., reference_method=
    "GFN2-xTB", ml_model="KREG", sampler_kwargs={...}, ...)``.

    Translated keyword by keyword into :class:`~ase_al.ActiveLearner` (tables:
    :data:`AL_KEYWORDS`, :data:`SAMPLER_KEYWORDS`, :data:`INITIAL_CONDITION_KEYWORDS`, or
    :func:`keyword_table`); MLatom's ``uq_threshold`` and ``init_RMSE_threshold`` are in
    Hartree and converted to eV. ase-al's own ActiveLearner keywords are accepted too.
    Everything is checked before the first reference calculation; no ``__main__`` guard is
    needed. MLatom samples on within an iteration until it has ``new_points`` uncertain
    structures: ``fill_new_points=True`` does the same (default: one batch of trajectories
    per iteration).

    Returns the final model (a :class:`~ase_al.calculators.Committee`).
    """
    from ase_al.active_learning import ActiveLearner

    if molecule is not None:
        kwargs["molecule"] = molecule
    if reference_method is not None:
        kwargs["reference_method"] = reference_method
    if "ml_model_type" not in kwargs and "model" not in kwargs:
        kwargs["ml_model"] = ml_model
    options = translate(kwargs)
    if options.get("reference") is None:
        raise ValueError("al() needs reference_method (a method name or a calculator)")
    if options.get("molecule") is None:
        raise ValueError(
            "al() needs molecule (or initdata_sampler_kwargs['molecule']): the equilibrium "
            "geometry to sample around"
        )
    from ase_al.active_learning.settings import KINDS, LEGACY, from_keywords

    flat = {k: options.pop(k) for k in list(options) if k in LEGACY or k == "sampler_kwargs"}
    given = {kind: options.pop(kind, None) for kind in KINDS}  # option objects or shorthands
    objects = from_keywords(given, flat, warn=False)  # MLatom's vocabulary is not deprecated
    return ActiveLearner(**options, **objects).run()


__all__ = ["AL_KEYWORDS", "INITIAL_CONDITION_KEYWORDS", "SAMPLER_KEYWORDS", "al", "translate"]
