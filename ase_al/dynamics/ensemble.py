"""Ensembles of surface-hopping trajectories: initial states, parallel runs, populations."""

from __future__ import annotations

import json
import logging
from concurrent.futures import as_completed
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.io.trajectory import Trajectory
from tqdm.auto import tqdm

from ase_al.dynamics.surface_hopping import SurfaceHopping
from ase_al.executors import check_shippable
from ase_al.files import atomic_write
from ase_al.io import storable
from ase_al.options import renames

log = logging.getLogger("ase_al.dynamics")


def _calculator(calculator, n_states):
    """A fresh multistate calculator in this process: from a method name, a saved model
    directory, a factory, or a calculator object (copied by pickling to the worker)."""
    if isinstance(calculator, str):
        path = Path(calculator)
        if (path / "multistate.json").is_file():
            from ase_al.calculators.multistate import MultiState

            return MultiState.load(path)
        from ase_al.calculators import methods

        return methods(calculator, n_states=n_states)
    if callable(calculator) and not hasattr(calculator, "calculate"):
        return calculator()
    return calculator


def choose_initial_states(
    initial_conditions: list[Atoms],
    calculator,
    n_excitations: int,
    window: tuple[float, float],
    seed: int | None = None,
) -> list[int | None]:
    """Initial states chosen by oscillator strength within an excitation window (eV).

    For each geometry, excited state n is chosen with probability ∝ f_0n among the states with
    excitation energy inside ``window``; ``None`` where no state falls inside (the geometry is
    not excited). Needs a calculator giving ``excitation_energies`` and
    ``oscillator_strengths`` (e.g. TDDFT through PySCF).
    """
    rng = np.random.default_rng(seed)
    calc = _calculator(calculator, n_excitations + 1)
    chosen = []
    for atoms in initial_conditions:
        work = atoms.copy()
        work.calc = calc
        energies = np.asarray(calc.get_property("excitation_energies", work))[:n_excitations]
        strengths = np.asarray(calc.get_property("oscillator_strengths", work))[:n_excitations]
        inside = (energies >= window[0]) & (energies <= window[1])
        weights = np.where(inside, strengths, 0.0)
        if weights.sum() <= 0:
            chosen.append(None)
            continue
        chosen.append(int(rng.choice(len(weights), p=weights / weights.sum())) + 1)
    return chosen


def run_trajectory(
    index: int,
    atoms: Atoms,
    calculator,
    initial_state: int,
    n_states: int,
    time_step_fs: float,
    max_time_fs: float,
    workdir: str,
    seed: int,
    prevent_back_hop: bool = False,
    algorithm: str = "LZBL",
) -> dict:
    """One trajectory (run in a worker): writes ``traj_<index>.traj`` and ``traj_<index>.json``
    (times, states, hops) in ``workdir``. Times in fs."""
    workdir = Path(workdir)
    work = atoms.copy()
    work.calc = _calculator(calculator, n_states)
    dynamics = SurfaceHopping(
        work,
        time_step_fs * units.fs,
        initial_state=initial_state,
        n_states=n_states,
        prevent_back_hop=prevent_back_hop,
        seed=seed,
        algorithm=algorithm,
    )
    with atomic_write(workdir / f"traj_{index}.traj") as partial:
        with Trajectory(str(partial), "w", work) as trajectory:
            dynamics.attach(lambda: trajectory.write(storable(work)), interval=1)
            dynamics.run(int(round(max_time_fs / time_step_fs)))
    record = {
        "index": index,
        "times": [t for t, _ in dynamics.states],
        "states": [s for _, s in dynamics.states],
        "hops": dynamics.hops,
    }
    with atomic_write(workdir / f"traj_{index}.json") as part:
        part.write_text(json.dumps(record))
    return record


def populations(records: list[dict], n_states: int, time_step_fs: float, max_time_fs: float):
    """Fraction of trajectories in each state on the time grid: (times (T,), pops (T, S))."""
    times = np.arange(int(round(max_time_fs / time_step_fs)) + 1) * time_step_fs
    counts = np.zeros((len(times), n_states))
    for record in records:
        grid_index = np.rint(np.asarray(record["times"]) / time_step_fs).astype(int)
        states = np.empty(len(times), dtype=int)
        # the last entry for a time wins (a hop rewrites the time of the minimum)
        filled = np.full(len(times), -1)
        for k, state in zip(grid_index, record["states"], strict=True):
            if 0 <= k < len(times):
                filled[k] = state
        last = filled[0]
        for k in range(len(times)):
            last = filled[k] if filled[k] >= 0 else last
            states[k] = last
        counts[np.arange(len(times)), states] += 1
    return times, counts / max(len(records), 1)


@renames(time_step="time_step_fs", max_time="max_time_fs", nstates="n_states")
def run_ensemble(
    initial_conditions: list[Atoms],
    calculator,
    n_states: int,
    initial_state: int | list[int] | str = 1,
    time_step_fs: float = 0.25,
    max_time_fs: float = 100.0,
    workdir: str | Path = "surface_hopping",
    executor=None,
    excitation_window: tuple[float, float] | None = None,
    prevent_back_hop: bool = False,
    seed: int = 0,
    progress: bool | None = None,
    algorithm: str = "LZBL",
) -> dict:
    """An ensemble of surface-hopping trajectories (LZBL, or FSSH with ``algorithm="FSSH"``:
    the calculator must give nonadiabatic couplings) and its state populations.

    Parameters
    ----------
    initial_conditions : list of Atoms
        Geometries with momenta, e.g. ``ase_al.samplers.wigner(...)``.
    calculator : str, callable or Calculator
        A method name (``"TDA-B3LYP/6-31G*"``; excited states up to ``n_states - 1``), a
        directory of a saved :class:`~ase_al.calculators.multistate.MultiState`, a
        picklable factory returning a multistate calculator, or such a calculator.
    n_states : int
        Electronic states in the dynamics, ground state included.
    initial_state : int, list of int, or "bright"
        The state every trajectory starts in, one per trajectory, or ``"bright"``: chosen by
        oscillator strength inside ``excitation_window`` (eV), see
        :func:`choose_initial_states`; geometries with no state in the window are skipped.
    time_step_fs, max_time_fs : float
        fs.
    workdir : path
        ``trajectories/traj_K.traj`` (``ase gui`` shows them, the state in each frame's info)
        and ``traj_K.json``, ``populations.dat``, ``populations.png``, ``summary.json``.
        A re-run skips the trajectories already finished.
    executor : concurrent.futures.Executor, optional
        Where trajectories run (default: a local process pool).

    Returns
    -------
    dict with ``times`` (fs), ``populations`` (T, n_states), ``n_trajectories`` and ``hops``.
    """
    workdir = Path(workdir)
    trajectory_dir = workdir / "trajectories"
    trajectory_dir.mkdir(parents=True, exist_ok=True)
    if initial_state == "bright":
        if excitation_window is None:
            raise ValueError("initial_state='bright' needs excitation_window=(E_min, E_max) in eV")
        states = choose_initial_states(
            initial_conditions, calculator, n_states - 1, excitation_window, seed
        )
    elif isinstance(initial_state, int | np.integer):
        states = [int(initial_state)] * len(initial_conditions)
    else:
        states = [int(s) for s in initial_state]
        if len(states) != len(initial_conditions):
            raise ValueError("give one initial state per initial condition")
    jobs = [
        (k, atoms, s)
        for k, (atoms, s) in enumerate(zip(initial_conditions, states, strict=True))
        if s is not None
    ]
    if not jobs:
        raise ValueError("no initial condition has a state to start in")
    algorithm = str(algorithm).upper()
    if algorithm not in ("LZBL", "FSSH"):
        raise ValueError(f"algorithm must be 'LZBL' or 'FSSH', got {algorithm!r}")

    records, pending = {}, []
    for k, atoms, state in jobs:
        done = trajectory_dir / f"traj_{k}.json"
        if done.is_file():
            records[k] = json.loads(done.read_text())
        else:
            pending.append((k, atoms, state))
    if pending:
        if executor is None:
            from ase_al.executors import default_executor

            executor = default_executor()
        check_shippable(calculator, "calculator", executor)
        futures = []
        try:
            futures = [
                executor.submit(
                    run_trajectory,
                    k,
                    atoms,
                    calculator,
                    state,
                    n_states,
                    time_step_fs,
                    max_time_fs,
                    str(trajectory_dir),
                    seed + k,
                    prevent_back_hop,
                    algorithm,
                )
                for k, atoms, state in pending
            ]
            bar = tqdm(
                as_completed(futures),
                total=len(futures),
                desc="trajectories",
                disable=None if progress is None else not progress,
            )
            for future in bar:
                record = future.result()
                records[record["index"]] = record
        finally:
            for future in futures:
                future.cancel()

    ordered = [records[k] for k in sorted(records)]
    times, pops = populations(ordered, n_states, time_step_fs, max_time_fs)
    header = "time/fs " + " ".join(f"S{s}" for s in range(n_states))
    with atomic_write(workdir / "populations.dat") as partial:
        np.savetxt(partial, np.column_stack([times, pops]), header=header, fmt="%.6f")
    hops = [h for r in ordered for h in r["hops"] if h["accepted"]]
    summary = {
        "n_trajectories": len(ordered),
        "n_states": n_states,
        "time_step_fs": time_step_fs,
        "max_time_fs": max_time_fs,
        "algorithm": algorithm,
        "hops": len(hops),
        "frustrated_hops": sum(h["frustrated"] for r in ordered for h in r["hops"]),
        "hops_by_pair": _count_pairs(hops),
        "final_populations": pops[-1].tolist(),
    }
    with atomic_write(workdir / "summary.json") as partial:
        partial.write_text(json.dumps(summary, indent=1))
    _plot(workdir / "populations.png", times, pops)
    log.info("surface hopping: %d trajectories, %d hops", len(ordered), len(hops))
    return {"times": times, "populations": pops, "n_trajectories": len(ordered), "hops": hops}


def _count_pairs(hops):
    counts = {}
    for hop in hops:
        key = f"S{hop['from']}->S{hop['to']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _plot(path: Path, times, pops) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for state in range(pops.shape[1]):
        ax.plot(times, pops[:, state], label=f"S{state}")
    ax.set_xlabel("time / fs")
    ax.set_ylabel("population")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    with atomic_write(path) as partial:
        fig.savefig(partial, format="png", dpi=120)
