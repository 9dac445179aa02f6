"""Sampling: the initial conditions of each batch of trajectories, the sampler call, and the
pooling and selection of the uncertain structures of an iteration."""

from __future__ import annotations

import functools
import logging

import numpy as np
from ase import Atoms

from ase_al.active_learning.selection import choose
from ase_al.active_learning.settings import Sampling, Selection
from ase_al.errors import check_same_atoms
from ase_al.files import write_traj
from ase_al.io import key_value_pairs
from ase_al.options import (
    check_defaults_kind,
    check_keywords,
    check_signature,
    keyword_names,
    renamed,
    takes_any_keyword,
)
from ase_al.samplers import get_sampler, wigner
from ase_al.samplers.batch_md import SamplingResult
from ase_al.samplers.relax import (
    COLLAPSE,
    along_path,
    relax_until_uncertain,
    rms_displacement,
)
from ase_al.samplers.stop import CertainFrames, UncertaintyStop

log = logging.getLogger("ase_al")

#: the relaxations take the first uncertain structure of each path, then each one this many
#: times as uncertain as the last taken, and the path's end when it is uncertain (see
#: ``relax_until_uncertain(ladder=...)``)
RELAXATION_LADDER = 2.0
#: a relaxation on the model whose end lies more than this RMS distance (Å) from its start
#: gets structures labelled along its path, one per this much distance, at most
#: :data:`PATH_SAMPLES` (see :meth:`SamplingStage.relaxations`)
PATH_SPACING = 0.05
PATH_SAMPLES = 8


class SamplingStage:
    """The sampler of a run with its options, checked when it is built (before any work).

    ``n_states``: a multistate run (default sampler ``surface_hopping``); ``rng``: the
    random generator (seeds of the Wigner samples, random selection), replaced each
    iteration by :meth:`begin`.
    """

    def __init__(
        self,
        sampling: Sampling,
        selection: Selection,
        molecule: Atoms,
        n_states: int | None,
        rng: np.random.Generator,
        progress: bool | None,
    ):
        self.sampling, self.selection = sampling, selection
        self.molecule, self.n_states, self.rng, self.progress = molecule, n_states, rng, progress
        sampler = self.sampling.sampler
        if self.n_states is not None:
            sampler = "surface_hopping" if sampler is None else sampler
            if isinstance(sampler, str) and sampler.lower() in ("batch_md", "md"):
                raise ValueError(
                    f"sampler {sampler!r} propagates one potential energy surface; a "
                    "multistate model samples with 'surface_hopping' (or 'wigner', or a function)"
                )
        if self.n_states is not None and self.sampling.relax_starting_points:
            raise ValueError(
                "Sampling.relax_starting_points optimises on one potential energy surface; a "
                "multistate model has several"
            )
        if self.n_states is not None and self.sampling.frequency_tolerance is not None:
            raise ValueError(
                "Sampling.frequency_tolerance checks the curvature of one potential energy "
                "surface; a multistate model has several"
            )
        if self.n_states is not None and self.sampling.barrier_top_tolerance is not None:
            raise ValueError(
                "Sampling.barrier_top_tolerance checks the forces on one potential energy "
                "surface; a multistate model has several"
            )
        sampler = "batch_md" if sampler is None else sampler
        self.sampler = get_sampler(sampler) if isinstance(sampler, str) else sampler
        self.sampler_options = dict(self.sampling.options)
        for old, new in getattr(self.sampler, "renamed_keywords", {}).items():
            renamed(self.sampler_options, old, new, owner="sampler options")
        conditions = self.sampling.initial_conditions
        if isinstance(conditions, (list, tuple)):
            check_same_atoms(conditions, self.molecule.numbers, "initial condition")
        elif conditions is not None:
            check_signature(
                conditions,
                "initial_conditions is called as initial_conditions(n, seed) and returns n "
                "Atoms with momenta",
                1,
                0,
            )
        name = getattr(self.sampler, "__name__", type(self.sampler).__name__)
        kwargs = self.sampler_options
        if self.samples_wigner():
            check_keywords("the 'wigner' sampler's options", kwargs, [])
            return
        if not takes_any_keyword(self.sampler):
            accepted = set(keyword_names(self.sampler))
            accepted -= {"model", "initial_conditions", "uq_threshold"}
            check_keywords(f"sampler {name!r} (options)", kwargs, accepted)
        check_defaults_kind(self.sampler, kwargs, f"options of sampler {name!r}")
        check_signature(
            self.sampler,
            "a sampler is called as sampler(model, initial_conditions=list[Atoms], "
            "uq_threshold=float, **options) and returns list[Atoms]",
            None,
            initial_conditions=[],
            uq_threshold=0.0,
            **self.extras(),
            **kwargs,
        )

    def samples_wigner(self) -> bool:
        return self.sampler is wigner or getattr(self.sampler, "__name__", "") == "wigner"

    def extras(self) -> dict:
        """Where to write trajectories and whether to show progress, for samplers that take
        them (every built-in one; a user's function only if its signature has them)."""
        extras = {}
        for key in ("trajectory_dir", "progress"):
            if key not in self.sampler_options and (
                takes_any_keyword(self.sampler) or key in keyword_names(self.sampler)
            ):
                extras[key] = None
        return extras

    def wigner(self, points, n, tag, temperature=None):
        """``n`` structures with momenta from the starting points (Wigner at minima,
        transition-state sampling at saddle points), uids ``<tag>-<index>``."""
        temperature = self.sampling.temperature if temperature is None else temperature
        samples = points.sample(n, temperature, self.rng, self.sampling.freeze_below_cm1)
        for index, atoms in enumerate(samples):
            atoms.info["uid"] = f"{tag}-{index:06d}"
        return samples

    def initial_conditions(self, points, n) -> list[Atoms]:
        """Where this batch of sampling trajectories starts (positions and momenta)."""
        given = self.sampling.initial_conditions
        if given is None:
            return self.wigner(points, n, "ic")
        if callable(given):
            conditions = list(given(n, int(self.rng.integers(2**32))))
            check_same_atoms(
                conditions, self.molecule.numbers, "structure returned by initial_conditions"
            )
        else:
            conditions = [atoms.copy() for atoms in given]
        for index, atoms in enumerate(conditions):
            atoms.info["uid"] = f"ic-{index:06d}"
        return conditions

    def begin(self, seed: int, iteration: int, batch: int = 0) -> None:
        """Draw the random numbers of iteration ``iteration`` (initial conditions,
        selection, the checks' displacements and samples), or of the initial data's Wigner
        batch ``batch`` (iteration 0), from a stream of their own, seeded by (``seed``,
        ``iteration``, ``batch``): a run resumed there draws what it would have drawn
        without the interruption, not its first numbers again."""
        self.rng = np.random.default_rng([int(seed), int(iteration), int(batch)])

    def iteration(self, pair, threshold, points, folder, labelled, relaxation_thresholds=None):
        """The structures to label this iteration, a summary of the sampling, the first
        batch's certain structures (:class:`~ase_al.samplers.stop.CertainFrames` or None),
        and the certain ends of the relaxations on the model (to be checked; see
        :meth:`relaxations`).

        The first batch decides convergence (``n_uncertain`` < ``min_new_points``). With
        ``Selection.fill`` further batches follow until ``pool_factor·new_points`` uncertain
        structures are pooled (at most ``Sampling.max_batches`` batches), and ``new_points``
        of the pool are chosen; otherwise the first ``new_points`` of the one batch.
        ``relaxation_thresholds``: {starting point: eV}, a lower threshold for that point's
        relaxation (see :meth:`relaxations`).
        """
        options = self.selection
        labelled = functools.cache(labelled)  # read once, by selection and relaxations
        first = self.batch(pair, threshold, points, folder / "trajectories")
        for atoms in first:
            atoms.info["sampling_batch"] = 1
        pool = list(first)
        batches = 1
        if options.fill and len(first) >= options.min_new_points:
            target = int(np.ceil(options.pool_factor * options.new_points))
            while len(pool) < target and batches < self.sampling.max_batches:
                batches += 1
                more = self.batch(pair, threshold, points, folder / f"trajectories_batch{batches}")
                for atoms in more:
                    atoms.info["sampling_batch"] = batches
                pool += list(more)
            if len(pool) < options.new_points:
                log.warning(
                    "%d uncertain structures after %d sampling batches (new_points = %d)",
                    len(pool),
                    batches,
                    options.new_points,
                )
            pool = choose(
                pool,
                options.new_points,
                options.method,
                self.rng,
                labelled() if options.method == "farthest" else [],
                points.reference,
            )
        summary = {
            "n_trajectories": first.n_trajectories,
            "n_certain": first.n_certain,
            "n_uncertain": len(first),
            "sampling_batches": batches,
        }
        selected, ends = pool[: options.new_points], []
        if self.sampling.relax_starting_points:
            found, summary["relaxations"], ends = self.relaxations(
                pair,
                threshold,
                points,
                folder / "relaxations",
                labelled(),
                relaxation_thresholds,
            )
            selected += found
        if self.sampling.frequency_tolerance is not None:
            found, summary["frequency_checks"] = self.frequency_checks(pair, points)
            selected += found
        return selected, summary, first.certain, ends

    def frequency_checks(self, pair, points):
        """The model's wavenumbers along the reference's modes at every starting point
        (:attr:`Sampling.frequency_tolerance`): the structures displaced along the modes off
        (``sampled_by="frequency check"``) and a summary per point."""
        from ase_al.samplers.modes import check_modes

        found, summaries = [], []
        for index, point in enumerate(points):
            check = check_modes(
                pair,
                point.atoms,
                point.vibrations,
                self.sampling.frequency_tolerance,
                self.sampling.temperature,
                self.rng,
            )
            summaries.append({"starting_point": index, **check.summary()})
            log.info(
                "frequencies of starting structure %d on the model: %d of %d modes off by more "
                "than %.3g %%%s",
                index,
                len(check.off),
                len(check.checked),
                100 * self.sampling.frequency_tolerance,
                "".join(
                    f"; {check.reference[k]:.0f} cm-1 is {check.model[k]:.0f}" for k in check.off
                ),
            )
            for atoms in check.displaced:
                atoms.info.update(starting_point=index, sampled_by="frequency check")
                found.append(atoms)
        return found, summaries

    def barrier_temperatures(self) -> tuple:
        """K: :attr:`Sampling.barrier_top_temperatures`, or the sampling temperature."""
        return self.sampling.barrier_top_temperatures or (self.sampling.temperature,)

    def barrier_samples(self, points) -> list[Atoms]:
        """With :attr:`Sampling.barrier_top_tolerance`: at every transition-state starting
        point, :attr:`Sampling.barrier_top_samples` structures by its
        transition-state sampling at each of :meth:`barrier_temperatures`, to be labelled
        for :meth:`barrier_checks` (``sampled_by="barrier-top check"``,
        ``barrier_temperature`` in K, ``barrier_seed``: the set is
        ``transition_state_sampling(atoms, vibrations, n, barrier_temperature,
        seed=barrier_seed, direction="random", freeze_below_cm1=...)``); none without the
        option."""
        from ase_al.samplers.wigner import transition_state_sampling

        if self.sampling.barrier_top_tolerance is None:
            return []
        found = []
        for index, point in enumerate(points):
            if not point.saddle:
                continue
            for temperature in self.barrier_temperatures():
                seed = int(self.rng.integers(2**32))
                samples = transition_state_sampling(
                    point.atoms,
                    point.vibrations,
                    self.sampling.barrier_top_samples,
                    temperature,
                    seed=seed,
                    direction="random",
                    freeze_below_cm1=self.sampling.freeze_below_cm1,
                )
                for atoms in samples:
                    atoms.info.update(
                        starting_point=index,
                        sampled_by="barrier-top check",
                        barrier_temperature=float(temperature),
                        barrier_seed=seed,
                    )
                    found.append(atoms)
        return found

    def barrier_checks(self, pair, points, labelled: list[Atoms]) -> list[dict]:
        """Where ``pair`` puts the barrier top at each transition-state starting point,
        from that point's ``labelled`` barrier samples (see :meth:`barrier_samples` and
        :func:`~ase_al.samplers.modes.check_barrier_top`): a summary per point and sampling
        temperature (``temperature``, K; widths at the sampling temperature)."""
        from ase_al.samplers.modes import check_barrier_top

        summaries = []
        for index, point in enumerate(points):
            if not point.saddle:
                continue
            for temperature in self.barrier_temperatures():
                samples = [
                    a
                    for a in labelled
                    if key_value_pairs(a).get("starting_point") == index
                    and key_value_pairs(a).get("barrier_temperature", self.sampling.temperature)
                    == temperature
                ]
                if len(samples) < 2:
                    continue
                check = check_barrier_top(
                    pair,
                    samples,
                    point.atoms,
                    point.vibrations,
                    self.sampling.temperature,
                    self.sampling.barrier_top_tolerance,
                )
                summaries.append(
                    {"starting_point": index, "temperature": temperature, **check.summary()}
                )
                log.info(
                    "barrier top of starting structure %d on the model (samples at %g K): "
                    "%+.4f ± %.4f Å·amu^1/2 (%+.4f Å) along the reaction coordinate, %+.2f of "
                    "its width%s",
                    index,
                    temperature,
                    check.shift,
                    check.error,
                    check.shift_A,
                    check.shift / check.width,
                    f": more than {self.sampling.barrier_top_tolerance:g}" if check.off else "",
                )
        return summaries

    def relaxations(self, pair, threshold, points, folder, labelled, thresholds=None):
        """Every starting point optimised on ``pair`` (:attr:`Sampling.relax_starting_points`):
        the uncertain structures of each path not ``labelled`` yet (the first, then each
        twice as uncertain as the last, to the end of the path, and the end itself when it is
        uncertain), a summary per point, and each path's end when it is certain and not
        labelled yet: the model's own minimum or saddle point, labelled as an overconfidence
        check (``sampled_by="relaxation end"``), since a learned barrier or binding energy is
        measured there and the committee can agree on a wrong well. ``thresholds``:
        {starting point: eV}, that point's own threshold where it is below ``threshold``
        (lowered where its checked end was off the target error:
        :func:`~ase_al.active_learning.checks.adjusted_relaxation_thresholds`).

        A path whose end lies more than :data:`PATH_SPACING` (RMS, Å) from its start also
        gives structures spread evenly by their distance from the start, one per
        :data:`PATH_SPACING`, at most :data:`PATH_SAMPLES`, certain or not
        (``sampled_by="relaxation path"``; :func:`~ase_al.samplers.relax.along_path`): the
        reference's energy profile along the line the model's optimisation takes. A
        committee can agree on a well the reference does not have, so the uncertainty
        alone does not find it: in a Diels-Alder run the ethene-butadiene complex's path on
        a network drifted for a hundred steps, then slid 0.45 Å closer (C-C 3.70 to 3.25 Å)
        into a well 2.2 kcal/mol deep where GFN2-xTB rises 2.5 kcal/mol, every step
        certain; only its end was labelled. Samples drawn around such an end instead
        (Wigner, the point's modes at 300 K) lay 21-102 kcal/mol above the complex, where
        the stiff modes, not the well, decide the energy."""
        folder.mkdir(parents=True, exist_ok=True)
        found, summaries, ends = [], [], []
        thresholds = thresholds or {}
        for index, point in enumerate(points):
            own = thresholds.get(index)  # used only below the run's threshold
            own = own if own is not None and own < float(np.max(threshold)) else None
            limit = threshold if own is None else own
            result = relax_until_uncertain(
                point.atoms,
                pair,
                limit,
                saddle=point.saddle,
                labelled=labelled,
                ladder=RELAXATION_LADDER,
            )
            write_traj(folder / f"{index:02d}.traj", result.path)
            if result.collapsed:
                log.warning(
                    "the relaxation of starting structure %d on the model ran into a hole "
                    "(atoms within %.1f of their covalent radii's sum) after %d steps: "
                    "stopped there, nothing past it labelled",
                    index,
                    COLLAPSE,
                    result.steps,
                )
            summary = {"starting_point": index, **result.summary()}
            if own is not None:
                summary["threshold"] = own
            summaries.append(summary)
            log.info(
                "relaxation of starting structure %d (%s) on the model: %s after %d steps; "
                "%d uncertain structures taken (largest uncertainty %.3g eV%s)",
                index,
                "transition state" if point.saddle else "minimum",
                "converged" if result.converged else "not converged",
                result.steps,
                len(result.uncertain),
                result.max_uncertainty,
                "" if own is None else f", its own threshold {own:.3g} eV",
            )
            for atoms in result.uncertain:
                atoms.info["starting_point"] = index
                atoms.info["sampled_by"] = "relaxation"
                found.append(atoms)
            steps = along_path(result.path, PATH_SPACING, PATH_SAMPLES, skip=result.uncertain_steps)
            for step in steps:
                atoms = result.path[step].copy()
                atoms.info.update(starting_point=index, sampled_by="relaxation path")
                found.append(atoms)
            if steps:
                summary["path_samples"] = len(steps)
                log.info(
                    "starting structure %d's relaxation on the model ended %.2f Å (RMS) from "
                    "its start: %d structures along its path taken",
                    index,
                    rms_displacement(result.path[0], result.path[-1]),
                    len(steps),
                )
            end = result.path[-1]
            if end.info["uncertainty"] <= limit and not result.end_labelled:
                end = end.copy()
                end.info.update(starting_point=index, sampled_by="relaxation end")
                ends.append(end)
        return found, summaries, ends

    def batch(self, pair, threshold, points, trajectory_dir) -> SamplingResult:
        kwargs = dict(self.sampler_options)
        n = self.sampling.n_trajectories
        if self.samples_wigner():
            samples = self.wigner(points, n, "screen")
            key = "energy_uncertainty" if self.n_states is None else "state_uncertainties"
            u = pair.predict(samples, forces=False)[key]
            uncertain = UncertaintyStop(threshold, self.n_states).exceeded(u)
            certain = CertainFrames(samples[0])
            for index in np.flatnonzero(~uncertain):
                certain.add(samples[index].positions, index, 0.0, np.max(u[index]))
            result = SamplingResult(
                [s for s, x in zip(samples, uncertain, strict=True) if x],
                n_trajectories=n,
                n_certain=int(np.sum(~uncertain)),
                certain=certain,
            )
            return with_starting_points(result, samples)
        if isinstance(self.sampling.initial_conditions, (list, tuple)):
            n = len(self.sampling.initial_conditions)
        conditions = self.initial_conditions(points, n)
        extras = self.extras()
        if "trajectory_dir" in extras:
            kwargs["trajectory_dir"] = trajectory_dir
        if "progress" in extras:
            kwargs["progress"] = self.progress
        result = self.sampler(pair, initial_conditions=conditions, uq_threshold=threshold, **kwargs)
        if not isinstance(result, SamplingResult):  # a user function returning list[Atoms]
            result = SamplingResult(result, n_trajectories=len(result), n_certain=0)
        return with_starting_points(result, conditions)


def with_starting_points(result: SamplingResult, conditions) -> SamplingResult:
    """Each structure of ``result`` (found in trajectory ``info["trajectory"]``) and each
    certain frame gets the ``starting_point`` of its trajectory's initial condition. A
    sampler copies its frames from one template, so without this every structure would say
    it came from the first condition's point."""
    origin = {
        k: {"starting_point": atoms.info["starting_point"]}
        for k, atoms in enumerate(conditions)
        if "starting_point" in atoms.info
    }
    if origin:
        for atoms in result:
            trajectory = atoms.info.get("trajectory")
            if trajectory in origin:
                atoms.info.update(origin[trajectory])
        if result.certain is not None:
            result.certain.trajectory_info = origin
    return result


__all__ = ["SamplingStage"]
