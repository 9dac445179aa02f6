"""The option objects of :class:`~ase_al.ActiveLearner`, each checking its own values.

    ActiveLearner(
        molecule, "GFN2-xTB", model="KREG",
        initial_data=InitialData(batch=50, temperature=500.0),
        sampling=Sampling(n_trajectories=100, options={"max_time_fs": 1000.0}),
        selection=Selection(new_points=100, method="farthest", pool_factor=2, fill=True),
        uncertainty=Uncertainty(threshold=0.01),
    )

Units: K, eV, fs (in option names that say so). :func:`from_keywords` maps the flat keywords
of ase-al's first release onto these objects (with a ``FutureWarning``).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields

from ase import units

from ase_al.options import (
    check_int,
    check_keywords,
    check_number,
    check_threshold,
    check_type,
)
from ase_al.samplers.modes import BARRIER_SAMPLES

#: eV: 0.1 kcal/mol, below which an energy error does not matter for the dynamics the
#: learner samples: :attr:`Uncertainty.floor` without a ``target_error``
NOISE_FLOOR = 0.1 * units.kcal / units.mol


@dataclass(frozen=True)
class InitialData:
    """How the initial training set is made.

    Parameters
    ----------
    batch : int
        Wigner structures per initial-data batch.
    max_points : int
        Upper bound on the initial data set.
    rmse : float, optional
        eV: stop growing the initial data when the cross-validation RMSE is at or below it;
        default :attr:`Uncertainty.target_error`, or 0.1 kcal/mol (0.00434 eV) without one.
        Batches also stop when a power law fitted to the learning curve (four batches or
        more) promises a gain from another batch within the curve's own scatter about the
        fit, or (five or more) less than 10 %; ``al.log`` and ``state.json``
        (``initial_data_stop``) say which rule stopped it.
    temperature : float, optional
        K of the Wigner sampling of initial data; default: the sampling temperature.
    structures : path, list of Atoms or callable, optional
        Your own initial data instead of Wigner batches: labelled structures (an ASE database
        path, or Atoms carrying energies and forces) are imported; unlabelled Atoms (or those a
        function ``structures()`` returns) are labelled with the reference.
    """

    batch: int = 50
    max_points: int = 1000
    rmse: float | None = None
    temperature: float | None = None
    structures: object = None

    def __post_init__(self):
        check_int("InitialData.batch", self.batch, minimum=2)
        check_int("InitialData.max_points", self.max_points, minimum=2)
        check_number("InitialData.rmse", self.rmse, minimum=0.0, optional=True)
        check_number("InitialData.temperature", self.temperature, minimum=0.0, optional=True)
        source = self.structures
        if isinstance(source, (str, os.PathLike)):
            if not os.path.exists(source):
                raise FileNotFoundError(f"initial data: no such database {str(source)!r}")
        elif source is not None and not isinstance(source, (list, tuple)) and not callable(source):
            raise TypeError(
                "initial data must be a database path, a list of Atoms or a function returning "
                f"one, got {type(source).__name__}"
            )


@dataclass(frozen=True)
class Sampling:
    """How structures worth labelling are found in each iteration.

    Parameters
    ----------
    sampler : str or callable, optional
        ``"batch_md"`` (default), ``"md"``, ``"wigner"``, ``"surface_hopping"`` (default for
        a multistate model) or ``sampler(model, initial_conditions=..., uq_threshold=...,
        **options) -> list[Atoms]``.
    n_trajectories : int
        Trajectories (initial conditions) per sampling batch.
    temperature : float
        K of the Wigner initial conditions (and of the initial data unless
        :attr:`InitialData.temperature` is given).
    initial_conditions : list of Atoms or callable, optional
        Your own starting points (Atoms with momenta: the same every iteration, and
        ``n_trajectories`` is their number) or a function ``f(n, seed) -> list[Atoms]``.
    options : dict
        The sampler's own keywords, e.g. ``{"max_time_fs": 1000.0, "time_step_fs": 0.5}``.
    max_batches : int
        With :attr:`Selection.fill`, at most this many sampling batches per iteration.
    freeze_below_cm1 : float
        In the Wigner and transition-state sampling of the starting structures (initial
        data and initial conditions), modes below this frequency (cm⁻¹) keep their
        equilibrium position and only get momenta (see :func:`ase_al.samplers.wigner`): for
        complexes and floppy molecules, whose soft modes displaced harmonically break bonds.
        Default 0: every mode sampled.
    relax_starting_points : bool
        Each iteration, also optimise every starting structure on the model (minima by BFGS,
        transition states by Sella, to 1e-3 eV/Å, at most 300 steps) and label the first
        structure on each path whose uncertainty exceeds the threshold, then each one twice
        as uncertain as the last labelled, to the end of the path, and the end itself (the
        model's own minimum or saddle point) when it exceeds the threshold
        (:func:`ase_al.samplers.relax.relax_until_uncertain`; these come on top of
        :attr:`Selection.new_points`, a few per starting structure); an end below the
        threshold is labelled as an overconfidence check instead (one more label per
        starting structure and iteration, with ``Uncertainty.check_fraction`` > 0): a
        learned barrier or binding energy is measured at those points, and a committee can
        agree on a well 2 kcal/mol too deep. Trajectories from the
        reference's stationary points do not go where an optimisation on the learned surface
        goes: into a minimum that has moved, or a spurious well beside a weakly bound
        complex. With ``Uncertainty.target_error``, a checked end whose true error exceeds
        the target lowers that starting structure's own relaxation threshold (to 0.7 × the
        end's uncertainty, not below the target; raised back as its ends meet the target:
        :func:`ase_al.active_learning.checks.adjusted_relaxation_thresholds`), so that the
        next relaxations label the path into a wrong well, not only its end. A path whose
        end lies more than 0.05 Å (RMS) from its start also has structures labelled along
        it, one per 0.05 Å, at most 8, certain or not (``sampled_by="relaxation path"``:
        :meth:`ase_al.active_learning.sampling.SamplingStage.relaxations`). The run is not
        converged while a path meets an uncertain structure. The paths are written to
        ``iteration_<k>/relaxations/<point>.traj``. Single-state models only.
    frequency_tolerance : float, optional
        A fraction (0.1: 10 %). Each iteration, the model's harmonic wavenumbers along the
        reference's normal modes at every starting structure (the curvature of the model's
        surface along each mode the Wigner and transition-state sampling displace, at the
        reference's geometry: two force evaluations per mode, no reference calculation) are
        compared with the reference's, for the modes of 100 cm⁻¹ or more
        (:data:`ase_al.samplers.modes.FLOOR_CM1`). Each mode off by more than this fraction
        gets two structures labelled: the starting structure displaced along it one way by
        a half to one of its Wigner widths at the sampling temperature and the other way by
        one to two (a model can fit the reference at one to two widths and still be flatter
        inside one, where most samples lie; :func:`ase_al.samplers.modes.check_modes`;
        ``sampled_by="frequency check"``, on top of :attr:`Selection.new_points`). Initial
        conditions drawn from the reference's modes are only what the model's own would be
        when its curvature agrees there; a reaction's
        asynchronous mode at the saddle point sets the time between its bond formations.
        The run is not converged while a mode is off. ``sampling.json`` lists the modes off
        per starting structure (``frequency_checks``). Default None: no check. Single-state
        models only.
    barrier_top_tolerance : float, optional
        A fraction of the reaction coordinate's Wigner width at the sampling temperature
        (0.1: a tenth). Each iteration, at every transition-state starting structure,
        :attr:`barrier_top_samples` transition-state samples are
        labelled (``sampled_by="barrier-top check"``, on top of
        :attr:`Selection.new_points`), and the model's mean force along the reference's
        reaction coordinate over them, against the reference's, gives how far the model's
        barrier top lies from the reference's along it
        (:func:`ase_al.samplers.modes.check_barrier_top`). Trajectories started on the
        reference's dividing surface start on one side of the model's: at the
        Diels-Alder saddle point, the top moved by a fifth of that width (0.017 Å in
        Cartesian length; a mean force error of 0.03 eV/(Å·amu^1/2) along it) turned 9 of
        GFN2-xTB's 19 recrossing trajectories (of 100) direct. The run is not converged while
        the shift is larger than this fraction. The history lists each check (``barrier_checks``:
        ``shift`` and ``shift_error`` in Å·amu^1/2, ``shift_A`` in Å, ``shift_in_widths``).
        Default None: no check. Single-state models with a transition state among the
        starting structures only.
    barrier_top_temperatures : sequence of float, optional
        Temperatures (K) at which the barrier-top check draws its samples,
        :attr:`barrier_top_samples` at each, with one check per
        temperature (the same tolerance, in widths at :attr:`temperature`). Default: the
        sampling temperature alone. Trajectories that linger at the top, the ones that
        recross, carry more energy in the transverse modes than the thermal distribution
        does, and a model can put the top right for thermal samples and wrong for hotter
        ones: at the Diels-Alder saddle point two early networks put it 0.03–0.04
        Å·amu^1/2 off at 300 K, 0.09–0.10 at 600 K and 0.23 at 1200 K, toward the
        reactants, and pulled GFN2-xTB's recrossing trajectories toward the product.
        ``(300, 600)`` checks both. Needs ``barrier_top_tolerance``.
    barrier_top_samples : int
        Transition-state samples labelled per temperature and transition state for the
        barrier-top check, each iteration (default
        :data:`~ase_al.samplers.modes.BARRIER_SAMPLES`, 20). The check's standard error
        falls as one over its square root: at the Diels-Alder saddle point (GFN2-xTB, early
        networks) 20 samples measure the top to ±0.03 Å·amu^1/2 at 300 and 600 K, about the
        tolerance 0.1 (0.024), so the verdict near the tolerance is a coin toss; 100 measure
        it to ±0.01–0.015. The samples are also training data where the recrossing
        trajectories linger.
    """

    sampler: str | Callable | None = None
    n_trajectories: int = 100
    temperature: float = 300.0
    initial_conditions: object = None
    options: dict = field(default_factory=dict)
    max_batches: int = 20
    freeze_below_cm1: float = 0.0
    relax_starting_points: bool = False
    frequency_tolerance: float | None = None
    barrier_top_tolerance: float | None = None
    barrier_top_temperatures: tuple | None = None
    barrier_top_samples: int = BARRIER_SAMPLES

    def __post_init__(self):
        if self.sampler is not None and not isinstance(self.sampler, str):
            if not callable(self.sampler):
                raise TypeError(
                    f"sampler must be a name or a callable, got {type(self.sampler).__name__}"
                )
        check_int("Sampling.n_trajectories", self.n_trajectories, minimum=1)
        check_number("Sampling.temperature", self.temperature, minimum=0.0)
        check_type("Sampling.options", self.options, dict)
        check_int("Sampling.max_batches", self.max_batches, minimum=1)
        check_number("Sampling.freeze_below_cm1", self.freeze_below_cm1, minimum=0.0)
        check_type("Sampling.relax_starting_points", self.relax_starting_points, bool)
        positive_fraction(
            "Sampling.frequency_tolerance",
            self.frequency_tolerance,
            "a fraction, e.g. 0.05 for 5 %",
        )
        positive_fraction(
            "Sampling.barrier_top_tolerance",
            self.barrier_top_tolerance,
            "a fraction of the reaction coordinate's width, e.g. 0.1",
        )
        check_int("Sampling.barrier_top_samples", self.barrier_top_samples, minimum=2)
        if self.barrier_top_samples != BARRIER_SAMPLES and self.barrier_top_tolerance is None:
            raise ValueError(
                "Sampling.barrier_top_samples needs barrier_top_tolerance (the check it sets "
                "the samples of), e.g. barrier_top_tolerance=0.1"
            )
        if self.barrier_top_temperatures is not None:
            temperatures = self.barrier_top_temperatures
            if isinstance(temperatures, str | bytes) or not hasattr(temperatures, "__iter__"):
                raise TypeError(
                    "Sampling.barrier_top_temperatures must be a sequence of temperatures "
                    f"in K, e.g. (300, 600), got {temperatures!r}"
                )
            temperatures = tuple(
                check_number("Sampling.barrier_top_temperatures", t, minimum=1e-6)
                for t in temperatures
            )
            if not temperatures:
                raise ValueError(
                    "Sampling.barrier_top_temperatures is empty: give at least one "
                    "temperature in K, or None for the sampling temperature"
                )
            if self.barrier_top_tolerance is None:
                raise ValueError(
                    "Sampling.barrier_top_temperatures needs barrier_top_tolerance (the "
                    "check it sets the temperatures of), e.g. barrier_top_tolerance=0.1"
                )
            object.__setattr__(self, "barrier_top_temperatures", temperatures)


def positive_fraction(name: str, value, example: str) -> float | None:
    """``value`` (None, or a fraction > 0) checked, with one message for 0 and negatives."""
    value = check_number(name, value, optional=True)
    if value is not None and value <= 0.0:
        raise ValueError(f"{name} must be > 0 ({example}), got {value:g}")
    return value


@dataclass(frozen=True)
class Selection:
    """Which sampled structures are labelled, and when the run has converged.

    Parameters
    ----------
    new_points : int
        At most this many structures are labelled per iteration.
    min_new_points : int
        Converged when fewer structures than this are uncertain (judged on the first sampling
        batch of an iteration).
    fill : bool
        Sample further batches until ``pool_factor·new_points`` uncertain structures are
        pooled (MLatom's behaviour); default: the uncertain structures of one batch.
    method : {"random", "farthest"}
        How ``new_points`` are picked from a larger pool: at random (MLatom's way) or by
        farthest-point sampling in the RE descriptor from everything labelled.
    pool_factor : float
        With ``fill``, the pool size as a multiple of ``new_points`` (≥ 1).
    max_iterations : int
    """

    new_points: int = 100
    min_new_points: int = 5
    fill: bool = False
    method: str = "random"
    pool_factor: float = 1.0
    max_iterations: int = 20

    def __post_init__(self):
        check_int("Selection.new_points", self.new_points, minimum=1)
        check_int("Selection.min_new_points", self.min_new_points, minimum=1)
        check_int("Selection.max_iterations", self.max_iterations, minimum=1)
        if self.method not in ("random", "farthest"):
            raise ValueError(
                f"selection method must be 'random' or 'farthest', got {self.method!r}"
            )
        check_number("Selection.pool_factor", self.pool_factor, minimum=1.0)
        if not self.fill and (self.method != "random" or self.pool_factor != 1.0):
            # one batch of n trajectories never pools more than new_points to choose from
            raise ValueError(
                f"selection method {self.method!r} and pool_factor={self.pool_factor} choose "
                "among the structures pooled by fill=True; give fill=True with them"
            )


#: the uncertainty kinds by name (a callable is the fifth)
UQ_KINDS = ("physics-informed", "committee", "variance", "distance")


@dataclass(frozen=True)
class Uncertainty:
    """How the uncertainty is measured, where its threshold lies, and how it is checked.

    Parameters
    ----------
    kind : str or callable
        Every kind reports in eV and goes through the same threshold and stop rules.

        - ``"physics-informed"`` (default): |E_main − E_aux| of a main (energies + forces) and
          an auxiliary (energies only) model, MLatom's pair;
        - ``"committee"``: the standard deviation of ``committee_size`` models trained on
          different random 80 % subsets;
        - ``"variance"``: the posterior standard deviation of a Gaussian process (a KREG
          fitted to the energies; for a KREG model, its energies-only twin), beside the main
          model;
        - ``"distance"``: the RE-descriptor distance to the nearest labelled structure,
          scaled to eV by the main model's held-out error
          (:class:`~ase_al.calculators.uncertain.NearestDistance`);
        - a function ``uq(model, images) -> array`` (eV, one per structure), given the
          trained main model.
    committee_size : int
    threshold : float or list of float, optional
        eV (per state for a multistate model). Default: set on the first iteration as median
        + ``multiplier``·MAD of the uncertainties on a held-out ``validation_fraction`` of the
        labelled data (MLatom's m+3mad), but not below ``target_error`` (or 0.1 kcal/mol
        without one: an uncertainty smaller than what matters is no reason to label), then
        kept (see ``target_error`` for the exception). A run resumed with a threshold other
        than the one it was started (or last resumed) with takes the new one.
    multiplier : float
    validation_fraction : float
    target_error : float, optional
        eV: the energy error that matters. It is the initial data's target RMSE (unless
        :attr:`InitialData.rmse` is given) and the lowest measured threshold; with it, a run
        converges only when the checked certain structures meet it (their RMSE's upper
        ``confidence`` bound at most ``target_error``), and the threshold follows the checks
        (:mod:`ase_al.active_learning.checks`): multiplied by 0.7 when more than a quarter of
        them exceed the target, divided by 0.7 (up to the threshold the run started from)
        when none does, their bound meets it and the run goes on.
    check_fraction : float
        Overconfidence checks: this fraction of the trajectories of an iteration's first
        sampling batch, as a random sample of the structures the sampler passed as certain,
        is labelled too (``source="check"``); 0 turns the checks off.
    min_checks : int
        At least this many checks per iteration (when ``check_fraction`` > 0).
    confidence : float
        Of the ``target_error`` rule.
    """

    kind: str | Callable = "physics-informed"
    committee_size: int = 4
    threshold: float | list | None = None
    multiplier: float = 3.0
    validation_fraction: float = 0.1
    target_error: float | None = None
    check_fraction: float = 0.03
    min_checks: int = 5
    confidence: float = 0.9

    def __post_init__(self):
        if not callable(self.kind) and self.kind not in UQ_KINDS:
            import difflib

            close = difflib.get_close_matches(str(self.kind), UQ_KINDS, n=1)
            raise ValueError(
                "uncertainty must be "
                + ", ".join(repr(k) for k in UQ_KINDS)
                + f" or a function uq(model, images), got {self.kind!r}"
                + (f" (did you mean {close[0]!r}?)" if close else "")
            )
        check_int("Uncertainty.committee_size", self.committee_size, minimum=1)
        if self.kind == "committee" and self.committee_size < 2:
            raise ValueError("a committee needs committee_size >= 2")
        check_threshold(self.threshold)
        check_number("Uncertainty.multiplier", self.multiplier, minimum=0.0)
        check_number("Uncertainty.target_error", self.target_error, minimum=0.0, optional=True)
        if self.target_error == 0.0:
            raise ValueError("Uncertainty.target_error must be positive, got 0")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        check_number("Uncertainty.check_fraction", self.check_fraction, minimum=0.0)
        if self.check_fraction > 1.0:
            raise ValueError(f"check_fraction must be in [0, 1], got {self.check_fraction}")
        check_int("Uncertainty.min_checks", self.min_checks, minimum=1)
        if not 0.5 <= check_number("Uncertainty.confidence", self.confidence) < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.target_error is not None and self.check_fraction == 0:
            raise ValueError(
                "target_error is judged on the overconfidence checks; give check_fraction > 0"
            )

    @property
    def floor(self) -> float:
        """eV: the error that matters — ``target_error``, or :data:`NOISE_FLOOR` without one.
        The initial data's default target RMSE and the lowest automatic threshold."""
        return NOISE_FLOOR if self.target_error is None else self.target_error


@dataclass(frozen=True)
class Equilibrium:
    """Where the sampling is centred: the equilibrium geometry and its normal modes.

    Parameters
    ----------
    optimize : bool
        Optimise the molecule first (default) or take it as the equilibrium.
    method : str or Calculator, optional
        Method for the optimisation and frequencies; default: the reference.
    vibrations : HarmonicAnalysis or VibrationsData, optional
        Normal modes of the molecule, taken as the equilibrium: no optimisation, no
        frequencies.
    """

    optimize: bool = True
    method: object = None
    vibrations: object = None

    def __post_init__(self):
        from ase.vibrations import VibrationsData

        if self.vibrations is not None and not isinstance(self.vibrations, VibrationsData):
            raise TypeError(
                "vibrations must be the result of ase_al.freq or an ase VibrationsData, got "
                f"{type(self.vibrations).__name__}"
            )


#: first-release flat keyword -> (option object, its field)
LEGACY = {
    "temperature": ("sampling", "temperature"),
    "init_temperature": ("initial_data", "temperature"),
    "init_batch": ("initial_data", "batch"),
    "max_init_points": ("initial_data", "max_points"),
    "init_rmse": ("initial_data", "rmse"),
    "sampler": ("sampling", "sampler"),
    "initial_conditions": ("sampling", "initial_conditions"),
    "max_sampling_batches": ("sampling", "max_batches"),
    "new_points": ("selection", "new_points"),
    "min_new_points": ("selection", "min_new_points"),
    "fill_new_points": ("selection", "fill"),
    "pool_factor": ("selection", "pool_factor"),
    "max_iterations": ("selection", "max_iterations"),
    "uq": ("uncertainty", "kind"),
    "committee_size": ("uncertainty", "committee_size"),
    "uq_threshold": ("uncertainty", "threshold"),
    "threshold_multiplier": ("uncertainty", "multiplier"),
    "validation_fraction": ("uncertainty", "validation_fraction"),
    "optimize": ("equilibrium", "optimize"),
    "optfreq": ("equilibrium", "method"),
    "vibrations": ("equilibrium", "vibrations"),
}


def _named_keywords(cls):
    """A mistyped keyword of an option object is named with the nearest field ("did you
    mean ...?") instead of Python's bare ``unexpected keyword argument``."""
    init = cls.__init__
    names = [f.name for f in dataclass_fields(cls)]

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        check_keywords(cls.__name__, kwargs, names)
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


KINDS = {
    "initial_data": InitialData,
    "sampling": Sampling,
    "selection": Selection,
    "uncertainty": Uncertainty,
    "equilibrium": Equilibrium,
}
for _cls in KINDS.values():
    _named_keywords(_cls)


def from_keywords(options: dict, legacy: dict, warn: bool = True) -> dict:
    """The option objects for ``options`` (the new keywords, objects or shorthands) and
    ``legacy`` (first-release flat keywords, ``sampler_kwargs``, ``model_kwargs``, a string
    ``selection``): ``{name: object}`` for the five option kinds."""
    legacy = dict(legacy)
    fields: dict[str, dict] = {kind: {} for kind in KINDS}
    objects = {}
    for kind, cls in KINDS.items():
        value = options.get(kind)
        if isinstance(value, cls) or value is None:
            objects[kind] = value
        elif kind == "initial_data":  # shorthand: the structures themselves
            objects[kind] = InitialData(structures=value)
        elif kind == "selection" and isinstance(value, str):  # shorthand: the method
            objects[kind] = None
            fields["selection"]["method"] = value
        elif kind == "uncertainty" and (isinstance(value, str) or callable(value)):  # the kind
            objects[kind] = Uncertainty(kind=value)
        else:
            raise TypeError(f"{kind} must be a {cls.__name__}, got {type(value).__name__}")
    if legacy and warn:
        warnings.warn(
            "ActiveLearner's flat keywords (" + ", ".join(sorted(legacy)) + ") are now fields "
            "of its option objects (InitialData, Sampling, Selection, Uncertainty, "
            "Equilibrium); they keep working for one release",
            FutureWarning,
            stacklevel=3,
        )
    sampler_kwargs = dict(legacy.pop("sampler_kwargs", None) or {})
    if "n_trajectories" in sampler_kwargs:
        fields["sampling"]["n_trajectories"] = sampler_kwargs.pop("n_trajectories")
    if sampler_kwargs:
        fields["sampling"]["options"] = sampler_kwargs
    if "initial_data" in legacy:
        fields["initial_data"]["structures"] = legacy.pop("initial_data")
    for name, value in legacy.items():
        kind, attribute = LEGACY[name]
        fields[kind][attribute] = value
    for kind, cls in KINDS.items():
        if fields[kind]:
            if objects[kind] is not None:
                objects[kind] = replace(objects[kind], **fields[kind])
            else:
                objects[kind] = cls(**fields[kind])
        elif objects[kind] is None:
            objects[kind] = cls()
    return objects


__all__ = [
    "NOISE_FLOOR",
    "UQ_KINDS",
    "Equilibrium",
    "InitialData",
    "Sampling",
    "Selection",
    "Uncertainty",
    "from_keywords",
]
