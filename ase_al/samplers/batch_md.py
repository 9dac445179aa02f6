"""Uncertainty-stopped NVE molecular dynamics, all trajectories in lockstep.

Velocity Verlet on a (T, N, 3) array: every step is one batched model call for all
trajectories still running. A trajectory stops at its first structure whose uncertainty
exceeds the threshold; that structure is returned for labelling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.io import write
from tqdm.auto import tqdm

from ase_al.options import renames
from ase_al.samplers.stop import CertainFrames, UncertaintyStop


class SamplingResult(list):
    """The structures to label (a ``list[Atoms]``) plus how the trajectories went.

    Attributes
    ----------
    n_trajectories : int
    n_certain : int
        Trajectories that stayed below the uncertainty threshold for the whole time.
    certain : CertainFrames, optional
        Structures the sampler passed as certain (every ``dump_interval`` steps), from which
        the learner draws its overconfidence checks; None where a sampler does not keep them.
    """

    def __init__(self, structures=(), n_trajectories: int = 0, n_certain: int = 0, certain=None):
        super().__init__(structures)
        self.n_trajectories = n_trajectories
        self.n_certain = n_certain
        self.certain = certain

    @property
    def fraction_certain(self) -> float:
        return self.n_certain / self.n_trajectories if self.n_trajectories else 1.0


@renames(time_step="time_step_fs", maximum_propagation_time="max_time_fs")
def batch_md(
    model,
    initial_conditions: list[Atoms],
    uq_threshold: float,
    max_time_fs: float = 1000.0,
    time_step_fs: float = 0.5,
    trajectory_dir: str | Path | None = None,
    dump_interval: int = 10,
    progress: bool | None = None,
) -> SamplingResult:
    """Propagate all initial conditions together until each becomes uncertain or time runs out.

    Parameters
    ----------
    model
        Has ``predict(images, forces=True, uncertainty=True)`` returning ``energy``,
        ``forces`` and ``energy_uncertainty`` (e.g. a :class:`~ase_al.calculators.Committee`).
    initial_conditions : list of Atoms
        Positions (Å) and momenta, e.g. from :func:`ase_al.samplers.wigner`.
    uq_threshold : float
        eV; a structure with a larger ``energy_uncertainty`` stops its trajectory.
    max_time_fs, time_step_fs : float
        fs.
    trajectory_dir : path, optional
        Write ``traj_K.traj`` per trajectory (every ``dump_interval`` steps, and the last frame).
    dump_interval : int
        Steps between written frames and between the certain structures kept in the
        result's ``certain`` (the learner's overconfidence checks draw from them).
    """
    stop = UncertaintyStop(uq_threshold)
    n_traj = len(initial_conditions)
    template = initial_conditions[0].copy()
    template.calc = None
    masses = template.get_masses()[None, :, None]
    positions = np.array([a.positions for a in initial_conditions])
    momenta = np.array([a.get_momenta() for a in initial_conditions])
    dt = time_step_fs * units.fs
    n_steps = int(round(max_time_fs / time_step_fs))
    running = np.arange(n_traj)
    frames: list[list[Atoms]] = [[] for _ in range(n_traj)]
    selected: list[Atoms] = []
    certain = CertainFrames(template)

    def evaluate(indices):
        images = [Atoms(template.numbers, positions=positions[i]) for i in indices]
        result = model.predict(images, forces=True, uncertainty=True)
        return result["forces"], result["energy_uncertainty"], result["energy"]

    def record(indices, step, energies, uncertainty):
        if trajectory_dir is None or step % dump_interval:
            return
        for i, energy, u in zip(indices, energies, uncertainty, strict=True):
            frame = Atoms(template.numbers, positions=positions[i].copy())
            frame.set_momenta(momenta[i].copy())
            frame.info.update(
                time_fs=step * time_step_fs, energy=float(energy), uncertainty=float(u)
            )
            frames[i].append(frame)

    forces, uncertainty, energies = evaluate(running)
    step = 0
    bar = tqdm(total=n_steps, desc="batch MD", disable=None if progress is None else not progress)
    while True:
        record(running, step, energies, uncertainty)
        uncertain = stop.exceeded(uncertainty)
        if step % dump_interval == 0 and not uncertain.all():
            kept = running[~uncertain]
            certain.add(positions[kept], kept, step * time_step_fs, uncertainty[~uncertain])
        for k in np.flatnonzero(uncertain):
            i = running[k]
            atoms = template.copy()  # keeps info such as charge and multiplicity
            atoms.positions = positions[i]
            atoms.set_momenta(momenta[i])
            selected.append(stop.record(atoms, i, step * time_step_fs, uncertainty[k]))
        keep = ~uncertain
        running, forces = running[keep], forces[keep]
        if step == n_steps or running.size == 0:
            break
        momenta[running] += 0.5 * dt * forces
        positions[running] += dt * momenta[running] / masses
        forces, uncertainty, energies = evaluate(running)
        momenta[running] += 0.5 * dt * forces
        step += 1
        bar.update()
    bar.close()
    if trajectory_dir is not None:
        directory = Path(trajectory_dir)
        directory.mkdir(parents=True, exist_ok=True)
        for i, trajectory in enumerate(frames):
            if trajectory:
                write(directory / f"traj_{i}.traj", trajectory)
    return SamplingResult(
        selected, n_trajectories=n_traj, n_certain=int(running.size), certain=certain
    )
