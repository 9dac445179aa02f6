"""Trajectory surface hopping as ASE molecular dynamics.

The nuclei move by velocity Verlet on the current electronic state of a multistate
calculator (parameter ``current_state``; results ``energies`` and ``forces``). Hops follow the
Landau–Zener–Belyaev–Lebedev (LZBL) scheme: when the gap ΔE(t) between the current state
and an adjacent one passes through a local minimum, the hopping probability is

    P = exp(−(π / 2ħ) · sqrt(ΔE³ / (d²ΔE/dt²)))

evaluated at the minimum from the three gaps around it (Belyaev & Lebedev, Phys. Rev. A 2011,
84, 014701); for two linear diabatic states with coupling V this is the Landau–Zener
exp(−2πV² / (ħ v |ΔF|)). An accepted hop happens at the minimum: the step after it is undone,
the state changes and the momenta are scaled to conserve the total energy; a hop for which the
kinetic energy does not suffice is frustrated (rejected).
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms, units
from ase.md.md import MolecularDynamics

from ase_al.simulations import HBAR


def lzbl_probability(gaps: np.ndarray, dt: float) -> float:
    """LZBL hopping probability from three consecutive gaps (eV) whose middle one is a
    local minimum; ``dt`` is the time step in ASE units. 0 if the middle gap is no minimum."""
    g0, g1, g2 = (float(g) for g in gaps)
    if not (g1 < g0 and g1 < g2):
        return 0.0
    curvature = (g2 - 2.0 * g1 + g0) / dt**2
    if curvature <= 0.0:
        return 0.0
    return math.exp(-math.pi / (2.0 * HBAR) * math.sqrt(g1**3 / curvature))


class SurfaceHopping(MolecularDynamics):
    """Nonadiabatic dynamics by trajectory surface hopping (LZBL), an ASE ``MolecularDynamics``.

    Parameters
    ----------
    atoms : Atoms
        With momenta (e.g. a Wigner sample) and a multistate calculator: one with a
        ``current_state`` parameter and an ``energies`` result (n_states, eV), such as
        ``methods("TDA-B3LYP/6-31G*", nstates=2)`` or a trained
        :class:`~ase_al.calculators.multistate.MultiState`.
    timestep : float
        ASE time units (``0.25 * ase.units.fs``).
    initial_state : int
        Electronic state to start on (0 = ground state).
    nstates : int, optional
        Number of states taking part (default: all the calculator gives).
    algorithm : {"LZBL"}
        Hopping scheme. FSSH needs nonadiabatic couplings and is not available here.
    prevent_back_hop : bool
        Forbid hops to a higher state (hops only go down in energy).
    seed : int, optional
        Seeds the random numbers that accept or reject hops.
    trajectory, logfile, loginterval :
        As for every ASE dynamics; each trajectory frame carries ``info["state"]``.

    Attributes
    ----------
    state : int
        The current electronic state.
    hops : list of dict
        Every hop attempt with a non-zero probability: ``time`` (fs), ``from``, ``to``,
        ``probability``, ``accepted``, ``frustrated``.
    states : list of (time fs, state)
        The state after every step.
    """

    def __init__(
        self,
        atoms: Atoms,
        timestep: float,
        initial_state: int = 1,
        nstates: int | None = None,
        algorithm: str = "LZBL",
        prevent_back_hop: bool = False,
        seed: int | None = None,
        trajectory=None,
        logfile=None,
        loginterval: int = 1,
        **kwargs,
    ):
        if algorithm.upper() != "LZBL":
            raise ValueError(
                f"algorithm {algorithm!r} is not available: LZBL is implemented; FSSH needs "
                "nonadiabatic coupling vectors, which no calculator here provides yet"
            )
        calc = atoms.calc
        if calc is None or "current_state" not in getattr(calc, "parameters", {}):
            raise ValueError(
                "surface hopping needs a multistate calculator (a 'current_state' parameter and "
                "'energies' results), e.g. methods('TDA-B3LYP/6-31G*', nstates=2) or MultiState"
            )
        energies = np.asarray(calc.get_property("energies", atoms))
        self.nstates = len(energies) if nstates is None else int(nstates)
        if not 0 <= initial_state < self.nstates <= len(energies):
            raise ValueError(
                f"initial_state {initial_state} and nstates {self.nstates} do not fit the "
                f"calculator's {len(energies)} states"
            )
        calc.set(current_state=int(initial_state))
        self.state = int(initial_state)
        self.prevent_back_hop = prevent_back_hop
        self.rng = np.random.default_rng(seed)
        self.hops: list[dict] = []
        self.states: list[tuple[float, int]] = [(0.0, self.state)]
        atoms.info["state"] = self.state
        # (energies, positions, momenta) of the last three steps, newest last
        self._history = [(energies[: self.nstates], atoms.get_positions(), atoms.get_momenta())]
        super().__init__(
            atoms,
            timestep,
            trajectory=trajectory,
            logfile=logfile,
            loginterval=loginterval,
            **kwargs,
        )

    def _set_state(self, state: int) -> None:
        self.state = state
        self.atoms.calc.set(current_state=state)
        self.atoms.info["state"] = state

    def _time_fs(self, steps_back: int = 0) -> float:
        return (self.nsteps + 1 - steps_back) * self.dt / units.fs

    def step(self, forces=None):
        atoms = self.atoms
        if forces is None:
            forces = atoms.get_forces(md=True)
        masses = atoms.get_masses()[:, None]
        p = atoms.get_momenta() + 0.5 * self.dt * forces
        atoms.set_positions(atoms.get_positions() + self.dt * p / masses)
        atoms.set_momenta(p, apply_constraint=False)
        forces = atoms.get_forces(md=True)
        atoms.set_momenta(atoms.get_momenta() + 0.5 * self.dt * forces)
        energies = np.asarray(atoms.calc.get_property("energies", atoms))[: self.nstates]
        self._history = [
            *self._history[-2:],
            (energies, atoms.get_positions(), atoms.get_momenta()),
        ]
        hopped = self._try_hop()
        if hopped:
            forces = atoms.get_forces(md=True)
            self.nsteps -= 1  # the step past the minimum was undone; the loop counts it again
        self.states.append((self._time_fs(1 if hopped else 0), self.state))
        return forces

    def _try_hop(self) -> bool:
        if len(self._history) < 3:
            return False
        energies = np.array([h[0] for h in self._history])
        candidates = [s for s in (self.state - 1, self.state + 1) if 0 <= s < self.nstates]
        if self.prevent_back_hop:
            candidates = [s for s in candidates if s < self.state]
        probabilities = []
        for target in candidates:
            gaps = np.abs(energies[:, target] - energies[:, self.state])
            probabilities.append(lzbl_probability(gaps, self.dt))
        if not any(probabilities):
            return False
        draw = self.rng.random()
        cumulative, chosen, chosen_record = 0.0, None, None
        for target, probability in zip(candidates, probabilities, strict=True):
            if probability == 0.0:
                continue
            record = {
                "time": self._time_fs(1),
                "from": self.state,
                "to": target,
                "probability": probability,
                "accepted": False,
                "frustrated": False,
            }
            cumulative += probability
            if chosen is None and draw < cumulative:
                chosen, chosen_record = target, record
                record["accepted"] = True
            self.hops.append(record)
        if chosen is None:
            return False
        # back to the minimum, then change state with energy-conserving momentum scaling
        e_min, positions, momenta = self._history[1]
        masses = self.atoms.get_masses()[:, None]
        kinetic = 0.5 * np.sum(momenta**2 / masses)
        new_kinetic = kinetic + e_min[self.state] - e_min[chosen]
        if new_kinetic < 0.0 or kinetic <= 0.0:
            chosen_record.update(accepted=False, frustrated=True)
            return False
        self.atoms.set_positions(positions)
        self.atoms.set_momenta(momenta * math.sqrt(new_kinetic / kinetic))
        self._set_state(chosen)
        self._history = [self._history[1]]
        return True

    def todict(self):
        d = super().todict()
        d.update(algorithm="LZBL", state=self.state, prevent_back_hop=self.prevent_back_hop)
        return d
