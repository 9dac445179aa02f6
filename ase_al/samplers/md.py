"""Uncertainty-stopped NVE MD: one ASE ``VelocityVerlet`` per trajectory.

The reference implementation of what :func:`~ase_al.samplers.batch_md` does in lockstep:
each trajectory is an ordinary ASE dynamics with the model as calculator, and an observer
reads the uncertainty after every step and stops the run at the first uncertain structure.
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.io.trajectory import Trajectory
from ase.md.verlet import VelocityVerlet
from tqdm.auto import tqdm

from ase_al.io import storable
from ase_al.options import renames
from ase_al.samplers.batch_md import SamplingResult
from ase_al.samplers.stop import CertainFrames, Uncertain, UncertaintyStop, run_until_uncertain


@renames(time_step="time_step_fs", maximum_propagation_time="max_time_fs")
def md(
    model: Calculator,
    initial_conditions: list[Atoms],
    uq_threshold: float,
    max_time_fs: float = 1000.0,
    time_step_fs: float = 0.5,
    trajectory_dir: str | Path | None = None,
    dump_interval: int = 10,
    progress: bool | None = None,
) -> SamplingResult:
    """Run each initial condition with ``ase.md.VelocityVerlet`` until it becomes uncertain.

    ``model`` is a calculator giving ``energy_uncertainty`` (eV), e.g. a
    :class:`~ase_al.calculators.Committee`; times are in fs. Same arguments and result as
    :func:`~ase_al.samplers.batch_md`.
    """
    n_steps = int(round(max_time_fs / time_step_fs))
    stop = UncertaintyStop(uq_threshold)
    selected, n_certain = [], 0
    certain = CertainFrames(initial_conditions[0])
    if trajectory_dir is not None:
        Path(trajectory_dir).mkdir(parents=True, exist_ok=True)
    bar = tqdm(initial_conditions, desc="MD", disable=None if progress is None else not progress)
    for index, start in enumerate(bar):
        atoms = start.copy()
        atoms.calc = model
        dyn = VelocityVerlet(atoms, timestep=time_step_fs * units.fs)
        traj = None
        if trajectory_dir is not None:
            traj = Trajectory(Path(trajectory_dir) / f"traj_{index}.traj", "w", atoms)
            dyn.attach(lambda traj=traj, atoms=atoms: traj.write(storable(atoms)), dump_interval)

        def check(atoms=atoms, dyn=dyn, index=index):
            uncertainty = atoms.calc.get_property("energy_uncertainty", atoms)
            if stop.exceeded(uncertainty):
                selected.append(stop.record(atoms, index, dyn.nsteps * time_step_fs, uncertainty))
                raise Uncertain
            if dyn.nsteps % dump_interval == 0:
                certain.add(atoms.positions, index, dyn.nsteps * time_step_fs, uncertainty)

        dyn.attach(check, interval=1)
        if not run_until_uncertain(dyn, n_steps, traj):
            n_certain += 1
    return SamplingResult(
        selected, n_trajectories=len(initial_conditions), n_certain=n_certain, certain=certain
    )
