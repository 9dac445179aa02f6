"""Uncertainty-stopped surface-hopping trajectories: the sampler of excited-state active learning.

Each initial condition is propagated by :class:`~ase_al.dynamics.SurfaceHopping` (LZBL) on
a multistate committee (e.g. the physics-informed pair of
:class:`~ase_al.calculators.MultiStateCommittee`), starting on ``initial_state``. A trajectory
stops, and its structure is queued for labelling, at the first step where

* the uncertainty of the current state or of a state adjacent to it (those the molecule
  can hop to) exceeds that state's threshold (``state_uncertainties`` > ``uq_threshold``; a
  scalar threshold applies to every state), or
* at a hop attempt, the members' LZBL probabilities differ by more than ``hop_threshold``
  (the structure queued is the one at the gap minimum, where the probability is evaluated):
  the models agree on the energies within the threshold but not on whether the molecule
  changes state — a qualitative error in the dynamics that energies alone can miss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import units
from ase.io.trajectory import Trajectory
from tqdm.auto import tqdm

from ase_al.io import storable
from ase_al.options import renames
from ase_al.samplers.batch_md import SamplingResult
from ase_al.samplers.stop import CertainFrames, Uncertain, UncertaintyStop, run_until_uncertain


@renames(time_step="time_step_fs", maximum_propagation_time="max_time_fs")
def surface_hopping(
    model,
    initial_conditions,
    uq_threshold,
    initial_state: int = 1,
    max_time_fs: float = 100.0,
    time_step_fs: float = 0.25,
    hop_threshold: float = 0.1,
    prevent_back_hop: bool = False,
    trajectory_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> SamplingResult:
    """Run one LZBL trajectory per initial condition until it becomes uncertain.

    Parameters
    ----------
    model
        A multistate committee calculator (``state_uncertainties`` and ``member_energies``
        results), e.g. ``MultiStateCommittee.physics_informed(main, aux)``. A copy runs each
        trajectory.
    initial_conditions : list of Atoms
        Positions (Å) and momenta, e.g. Wigner samples of the ground state.
    uq_threshold : float or sequence of float
        eV; per state, or one value for all.
    initial_state : int
        State every trajectory starts on (0 = ground state).
    max_time_fs, time_step_fs : float
        fs.
    hop_threshold : float
        Largest accepted difference between the members' hopping probabilities.
    trajectory_dir : path, optional
        Write ``traj_K.traj`` (with the state in each frame's info) per trajectory.
    seed : int
        Seeds the hop decisions (trajectory K uses ``seed + K``).

    Returns
    -------
    SamplingResult
        The uncertain structures; each carries ``info`` entries ``trajectory``, ``time_fs``,
        ``state``, ``uncertainty`` (eV, the largest state uncertainty) and ``reason``
        (``"energy"`` or ``"hop"``).
    """
    import copy

    from ase_al.dynamics.surface_hopping import SurfaceHopping

    n_states = getattr(model, "n_states", None)
    if n_states is None or not hasattr(model, "predict"):
        raise TypeError(
            "the surface-hopping sampler needs a multistate committee model "
            "(e.g. MultiStateCommittee.physics_informed(main, aux))"
        )
    stop = UncertaintyStop(uq_threshold, n_states)
    steps = int(round(max_time_fs / time_step_fs))
    selected, n_certain = [], 0
    certain = CertainFrames(initial_conditions[0])
    if trajectory_dir is not None:
        Path(trajectory_dir).mkdir(parents=True, exist_ok=True)
    bar = tqdm(
        total=len(initial_conditions),
        desc="surface hopping",
        disable=None if progress is None else not progress,
    )
    for index, start in enumerate(initial_conditions):
        atoms = start.copy()
        atoms.calc = copy.copy(model)  # shares the trained members, not the results
        atoms.calc.results, atoms.calc.atoms = {}, None
        atoms.calc.parameters = copy.deepcopy(model.parameters)
        dyn = SurfaceHopping(
            atoms,
            time_step_fs * units.fs,
            initial_state=initial_state,
            n_states=n_states,
            prevent_back_hop=prevent_back_hop,
            seed=seed + index,
        )
        found, seen, previous = [], [0], [atoms.copy()]

        def check(dyn=dyn, atoms=atoms, found=found, seen=seen, previous=previous, index=index):
            for record in dyn.hops[seen[0] :]:
                p = record.get("member_probabilities")
                if p is not None and max(p) - min(p) > hop_threshold:
                    # at the gap minimum: where an accepted hop left the atoms, else a step back
                    at = atoms.copy() if record["accepted"] else previous[0]
                    at.info.update(reason="hop", time_fs=record["time"], hop_probabilities=p)
                    found.append(at)
                    raise Uncertain
            seen[0] = len(dyn.hops)
            u = np.asarray(atoms.calc.results["state_uncertainties"])
            watched = [s for s in (dyn.state - 1, dyn.state, dyn.state + 1) if 0 <= s < n_states]
            if stop.exceeded(u, watched):
                at = atoms.copy()
                at.info.update(reason="energy", time_fs=dyn.nsteps * time_step_fs)
                found.append(at)
                raise Uncertain
            if dyn.nsteps % 10 == 0:  # kept for the learner's overconfidence checks
                certain.add(atoms.positions, index, dyn.nsteps * time_step_fs, u[watched].max())
            previous[0] = atoms.copy()

        writer = None
        if trajectory_dir is not None:
            writer = Trajectory(str(Path(trajectory_dir) / f"traj_{index}.traj"), "w", atoms)
            dyn.attach(lambda writer=writer, atoms=atoms: writer.write(storable(atoms)), interval=1)
        dyn.attach(check, interval=1)
        run_until_uncertain(dyn, steps, writer)
        if found:
            structure = found[0]
            structure.calc = None
            structure.info.update(
                trajectory=index,
                state=dyn.state,
                uncertainty=float(np.max(atoms.calc.results["state_uncertainties"])),
            )
            selected.append(structure)
        else:
            n_certain += 1
        bar.update()
    bar.close()
    return SamplingResult(
        selected, n_trajectories=len(initial_conditions), n_certain=n_certain, certain=certain
    )
