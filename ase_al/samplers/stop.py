"""When an uncertainty-checked sampling trajectory stops, and what it hands back: one rule
for the three trajectory samplers (``batch_md``, ``md``, ``surface_hopping``)."""

from __future__ import annotations

import numpy as np
from ase import Atoms


class Uncertain(Exception):
    """Raised by an observer to stop a sampling trajectory at its first uncertain structure."""


class UncertaintyStop:
    """A trajectory stops at its first structure whose uncertainty exceeds the threshold.

    Parameters
    ----------
    threshold : float or sequence of float
        eV; for a multistate model one per state (or one for all ``n_states``).
    n_states : int, optional
        Multistate: uncertainties come per state, and a structure is uncertain when any of
        the watched states exceeds its threshold.
    """

    def __init__(self, threshold, n_states: int | None = None):
        self.n_states = n_states
        threshold = np.asarray(threshold, float)
        self.threshold = threshold if n_states is None else np.broadcast_to(threshold, (n_states,))

    def exceeded(self, uncertainty, states=None):
        """Whether each uncertainty (eV; (P,) or a scalar; per state (..., S) for multistate)
        exceeds the threshold; ``states``: the states that count (default: all)."""
        over = np.asarray(uncertainty, float) > self.threshold
        if self.n_states is None:
            return over
        if states is not None:
            over = over[..., list(states)]
        return over.any(axis=-1)

    @staticmethod
    def record(atoms: Atoms, trajectory: int, time_fs: float, uncertainty: float, **info) -> Atoms:
        """The structure to label: a copy without calculator, carrying where it was found
        (``trajectory``, ``time_fs``) and its ``uncertainty`` (eV) in ``info``."""
        found = atoms.copy()
        found.calc = None
        found.info.update(
            trajectory=int(trajectory),
            time_fs=float(time_fs),
            uncertainty=float(uncertainty),
            **info,
        )
        return found


class CertainFrames:
    """Structures a sampler passed as certain, kept as arrays (positions, Å) with where
    they were seen, for the learner's overconfidence checks; :meth:`take` builds ``Atoms``
    (copies of ``template`` with the positions) only for the ones drawn."""

    def __init__(self, template: Atoms):
        self.template = template.copy()
        self.template.calc = None
        self._positions, self._trajectory, self._time, self._uncertainty = [], [], [], []
        #: per trajectory index, ``info`` its frames carry (e.g. which starting point its
        #: initial condition came from); set by whoever knows the initial conditions
        self.trajectory_info: dict[int, dict] = {}

    def add(self, positions, trajectory, time_fs, uncertainty) -> None:
        """Frames (F, N, 3) (or one (N, 3)) with their trajectory indices, times (fs) and
        uncertainties (eV; the largest over states for a multistate model)."""
        positions = np.asarray(positions, float)
        if positions.ndim == 2:
            positions = positions[None]
        f = len(positions)
        self._positions.append(positions.copy())
        self._trajectory.append(np.broadcast_to(np.asarray(trajectory, int), (f,)).copy())
        self._time.append(np.broadcast_to(np.asarray(time_fs, float), (f,)).copy())
        self._uncertainty.append(np.broadcast_to(np.asarray(uncertainty, float), (f,)).copy())

    def __len__(self) -> int:
        return sum(len(p) for p in self._positions)

    def take(self, indices) -> list[Atoms]:
        """The frames at ``indices`` as Atoms, with ``trajectory``, ``time_fs`` and
        ``uncertainty`` (and their trajectory's :attr:`trajectory_info`) in ``info``."""
        if not self._positions:
            return []
        positions = np.concatenate(self._positions)
        trajectory, time_fs, uncertainty = (
            np.concatenate(a) for a in (self._trajectory, self._time, self._uncertainty)
        )
        frames = []
        for i in np.asarray(indices, int):
            atoms = self.template.copy()
            atoms.positions = positions[i]
            atoms.info.update(self.trajectory_info.get(int(trajectory[i]), {}))
            atoms.info.update(
                trajectory=int(trajectory[i]),
                time_fs=float(time_fs[i]),
                uncertainty=float(uncertainty[i]),
                certain=True,
            )
            frames.append(atoms)
        return frames


def run_until_uncertain(dyn, steps: int, writer=None) -> bool:
    """Run ``dyn`` for ``steps``; True if an observer stopped it by raising
    :class:`Uncertain`. Closes ``writer`` (a trajectory file) either way."""
    try:
        dyn.run(steps)
    except Uncertain:
        return True
    finally:
        if writer is not None:
            writer.close()
    return False


__all__ = ["CertainFrames", "Uncertain", "UncertaintyStop", "run_until_uncertain"]
