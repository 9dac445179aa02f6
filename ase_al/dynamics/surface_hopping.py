"""Trajectory surface hopping as ASE molecular dynamics.

The nuclei move by velocity Verlet on the current electronic state of a multistate
calculator (parameter ``current_state``; results ``state_energies`` and ``forces``). Two hopping
schemes:

**FSSH** (Tully, J. Chem. Phys. 93, 1061 (1990)), for calculators that give nonadiabatic
coupling vectors d_kl = ⟨k|∇l⟩ (result ``nacs``, (n, n, N_atoms, 3) in 1/Å): the electronic
amplitudes obey iħ ċ_k = E_k c_k − iħ Σ_l (v·d_kl) c_l, integrated over each nuclear step in
``substeps`` exact unitary steps with E and v·d interpolated linearly; the probability to hop
from the current state k to l in a substep is the population flux
g_l = max(0, −2 Re(c_l* c_k v·d_lk)) dτ / |c_k|², and in the nuclear step
1 − Π(1 − Σ_l g_l) over the substeps, shared among the l by their summed g_l. A hop changes
the momenta along d_kl so that the total energy is conserved, or is frustrated (rejected)
where the kinetic energy along d_kl does not suffice.
Decoherence: simplified decay of mixing (Granucci & Persico, J. Chem. Phys. 126, 134114
(2007)), τ_kj = ħ/|E_j − E_k| · (1 + C/E_kin) with C = 0.1 Hartree by default. The coupling
vectors' signs are made continuous from step to step (a QC code's phases are arbitrary).

**LZBL** (Landau–Zener–Belyaev–Lebedev, MLatom's default), for calculators that give energies
only: when the gap ΔE(t) between the current state
and an adjacent one passes through a local minimum, the hopping probability is

    P = exp(−(π / 2ħ) · sqrt(ΔE³ / (d²ΔE/dt²)))

evaluated at the minimum from the three gaps around it (Belyaev & Lebedev, Phys. Rev. A 2011,
84, 014701); for two linear diabatic states with coupling V this is the Landau–Zener
exp(−2πV² / (ħ v |ΔF|)). An accepted hop happens at the minimum: the step after it is undone,
the state changes and the momenta are scaled to conserve the total energy; a hop for which the
kinetic energy does not suffice is frustrated (rejected).
(Over 400 lines: the two hopping schemes share the nuclear step, the state bookkeeping and
the back-step to the gap minimum; split, each half would need the other's internals.)
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.md import MolecularDynamics

from ase_al.options import renamed
from ase_al.simulations import HBAR

#: simplified-decay-of-mixing parameter C in eV (0.1 Hartree)
DECOHERENCE_C = 0.1 * units.Hartree


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
        ``current_state`` parameter and an ``state_energies`` result (n_states, eV), such as
        ``methods("TDA-B3LYP/6-31G*", n_states=2)`` or a trained
        :class:`~ase_al.calculators.multistate.MultiState`.
    timestep : float
        ASE time units (``0.25 * ase.units.fs``).
    initial_state : int
        Electronic state to start on (0 = ground state).
    n_states : int, optional
        Number of states taking part (default: all the calculator gives).
    algorithm : {"LZBL", "FSSH"}
        Hopping scheme; FSSH needs a calculator with nonadiabatic couplings (``nacs``).
    substeps : int
        FSSH: electronic integration steps per nuclear step.
    decoherence : float or None
        FSSH: the decay-of-mixing parameter C in eV (default 0.1 Hartree); None switches the
        decoherence correction off (Tully's original scheme).
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
        ``probability``, ``accepted``, ``frustrated``; on a committee calculator
        (:class:`~ase_al.calculators.MultiStateCommittee`), LZBL attempts also carry
        ``member_probabilities``, the probability from each member's energies.
    states : list of (time fs, state)
        The state after every step.
    coefficients : ndarray (FSSH)
        The electronic amplitudes c_k now; each trajectory frame carries
        ``info["populations"]`` = |c_k|².
    """

    def __init__(
        self,
        atoms: Atoms,
        timestep: float,
        initial_state: int = 1,
        n_states: int | None = None,
        algorithm: str = "LZBL",
        prevent_back_hop: bool = False,
        substeps: int = 20,
        decoherence: float | None = DECOHERENCE_C,
        seed: int | None = None,
        trajectory=None,
        logfile=None,
        loginterval: int = 1,
        **kwargs,
    ):
        if "nstates" in kwargs:  # the old name
            n_states = renamed(kwargs, "nstates", "n_states", owner="SurfaceHopping").pop(
                "n_states"
            )
        self.algorithm = algorithm.upper()
        if self.algorithm not in ("LZBL", "FSSH"):
            raise ValueError(f"algorithm must be 'LZBL' or 'FSSH', got {algorithm!r}")
        calc = atoms.calc
        if calc is None or "current_state" not in getattr(calc, "parameters", {}):
            raise ValueError(
                "surface hopping needs a multistate calculator (a 'current_state' parameter and "
                "'state_energies' results), e.g. methods('TDA-B3LYP/6-31G*', n_states=2) or "
                "MultiState"
            )
        energies = np.asarray(calc.get_property("state_energies", atoms))
        self.n_states = len(energies) if n_states is None else int(n_states)
        if not 0 <= initial_state < self.n_states <= len(energies):
            raise ValueError(
                f"initial_state {initial_state} and n_states {self.n_states} do not fit the "
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
        self._history = [(energies[: self.n_states], atoms.get_positions(), atoms.get_momenta())]
        # the energies of every member of a committee calculator, step by step (or None)
        self._member_history = [self._member_energies(calc)]
        if self.algorithm == "FSSH":
            try:
                nacs = np.asarray(calc.get_property("nacs", atoms))
            except (PropertyNotImplementedError, KeyError, NotImplementedError):
                raise ValueError(
                    "FSSH needs nonadiabatic coupling vectors (a 'nacs' result); this "
                    f"calculator ({type(calc).__name__}) gives none: use algorithm='LZBL'"
                ) from None
            self.substeps = int(substeps)
            self.decoherence = decoherence
            self.coefficients = np.zeros(self.n_states, dtype=complex)
            self.coefficients[self.state] = 1.0
            self._nacs = nacs[: self.n_states, : self.n_states]
            atoms.info["populations"] = np.abs(self.coefficients) ** 2
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

    def _member_energies(self, calc=None) -> np.ndarray | None:
        calc = self.atoms.calc if calc is None else calc
        members = getattr(calc, "results", {}).get("member_energies")
        return None if members is None else np.asarray(members)[:, : self.n_states]

    def _time_fs(self, steps_back: int = 0) -> float:
        return (self.nsteps + 1 - steps_back) * self.dt / units.fs

    def step(self, forces=None):
        if self.algorithm == "FSSH":
            return self._fssh_step(forces)
        atoms = self.atoms
        forces, energies = self._verlet(forces)
        self._history = [
            *self._history[-2:],
            (energies, atoms.get_positions(), atoms.get_momenta()),
        ]
        self._member_history = [*self._member_history[-2:], self._member_energies()]
        hopped = self._try_hop()
        # the state from this time on: the end of this step, or the gap minimum one step
        # back where the hop took place (read before the step count is wound back)
        time = self._time_fs(1 if hopped else 0)
        if hopped:
            forces = atoms.get_forces(md=True)
            self.nsteps -= 1  # the step past the minimum was undone; the loop counts it again
        self.states.append((time, self.state))
        self._remember(forces)
        return forces

    def _remember(self, forces: np.ndarray) -> None:
        self._last_forces = (self.atoms.get_positions(), self.state, forces)

    def _cached_forces(self) -> np.ndarray | None:
        """The forces the last step ended with, if the structure and state are still those."""
        last = getattr(self, "_last_forces", None)
        if last is None or last[1] != self.state:
            return None
        if not np.array_equal(last[0], self.atoms.positions):
            return None
        return last[2]

    def _refresh_properties(self):
        # ASE's MD asks for the forces again after every step so that loggers and observers
        # find them cached; each step here ends with them computed for the final positions
        if self._cached_forces() is None:
            self.atoms.get_forces()

    def _verlet(self, forces=None) -> tuple[np.ndarray, np.ndarray]:
        """One velocity Verlet step on the current state: the new forces and state energies."""
        atoms = self.atoms
        if forces is None:
            forces = self._cached_forces()
        if forces is None:
            forces = atoms.get_forces(md=True)
        masses = atoms.get_masses()[:, None]
        p = atoms.get_momenta() + 0.5 * self.dt * forces
        atoms.set_positions(atoms.get_positions() + self.dt * p / masses)
        atoms.set_momenta(p, apply_constraint=False)
        forces = atoms.get_forces(md=True)
        atoms.set_momenta(atoms.get_momenta() + 0.5 * self.dt * forces)
        energies = self._fresh("state_energies")[: self.n_states]
        return forces, energies

    def _fresh(self, name: str) -> np.ndarray:
        """A result of the calculation that ``get_forces`` just ran for these positions (read
        from the calculator's results: asking again through ``get_property`` would compare the
        whole structure once more, which costs more than a model's evaluation), computed if
        that calculation did not produce it."""
        value = self.atoms.calc.results.get(name)
        if value is None:
            value = self.atoms.calc.get_property(name, self.atoms)
        return np.asarray(value)

    def _try_hop(self) -> bool:
        if len(self._history) < 3:
            return False
        energies = np.array([h[0] for h in self._history])
        candidates = [s for s in (self.state - 1, self.state + 1) if 0 <= s < self.n_states]
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
            members = self._member_history
            if len(members) == 3 and all(m is not None for m in members):
                # the same LZBL formula on each committee member's gaps: their disagreement
                # says how far the hop itself can be trusted
                member_gaps = np.abs(np.array([m[:, target] - m[:, self.state] for m in members]))
                record["member_probabilities"] = [
                    lzbl_probability(g, self.dt) for g in member_gaps.T
                ]
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
        self._member_history = [self._member_history[1]]
        return True

    # -- FSSH ----------------------------------------------------------------------
    def _couplings(self, velocities: np.ndarray, nacs: np.ndarray) -> np.ndarray:
        """v·d_kl (n, n) in 1/ASE time."""
        return np.einsum("klaj,aj->kl", nacs, velocities)

    def _aligned(self, nacs: np.ndarray) -> np.ndarray:
        """``nacs`` with each pair's sign chosen to continue the previous step's."""
        nacs = nacs.copy()
        overlap = np.einsum("klaj,klaj->kl", nacs, self._nacs)
        flip = overlap < 0.0
        nacs[flip] *= -1.0
        return nacs

    def _fssh_step(self, forces=None):
        atoms = self.atoms
        masses = atoms.get_masses()[:, None]
        energies_old = self._history[-1][0]
        coupling_old = self._couplings(atoms.get_momenta() / masses, self._nacs)
        forces, energies = self._verlet(forces)
        nacs = self._fresh("nacs")[: self.n_states, : self.n_states]
        self._nacs = nacs = self._aligned(nacs)
        coupling = self._couplings(atoms.get_momenta() / masses, nacs)
        probabilities = self._propagate_amplitudes(energies_old, energies, coupling_old, coupling)
        hopped = self._fssh_hop(probabilities, energies, nacs)
        if hopped:
            forces = atoms.get_forces(md=True)
        if self.decoherence is not None:
            self._decay_of_mixing(energies)
        atoms.info["populations"] = np.abs(self.coefficients) ** 2
        self._history = [(energies, atoms.get_positions(), atoms.get_momenta())]
        self.states.append((self._time_fs(), self.state))
        self._remember(forces)
        return forces

    def _propagate_amplitudes(self, e0, e1, t0, t1) -> np.ndarray:
        """Integrate the amplitudes over one nuclear step; returns the probabilities of a hop
        from the current state to every state during the step."""
        k = self.state
        tau = self.dt / self.substeps
        c = self.coefficients
        # the generators of all substeps at once (energies and couplings interpolated
        # linearly): iħ ċ = (E − iħT) c is Hermitian (T antisymmetric), so one batched
        # eigendecomposition gives every substep's exact unitary propagator
        f = (np.arange(self.substeps) + 0.5) / self.substeps
        e = e0[None, :] + f[:, None] * (e1 - e0)[None, :]
        couplings = t0[None] + f[:, None, None] * (t1 - t0)[None]
        generators = -1j * couplings
        diagonal = (e - e.mean(axis=1, keepdims=True)) / HBAR
        generators[:, np.arange(self.n_states), np.arange(self.n_states)] += diagonal
        w, vectors = np.linalg.eigh(generators)
        propagators = np.einsum("sij,sj,skj->sik", vectors, np.exp(-1j * w * tau), vectors.conj())
        # the amplitudes after every substep (a chain of small products), then the hopping
        # probabilities of all substeps at once
        amplitudes = np.empty((self.substeps, self.n_states), dtype=complex)
        for j in range(self.substeps):
            c = propagators[j] @ c
            amplitudes[j] = c
        population = np.abs(amplitudes[:, k]) ** 2
        alive = population > 1e-14
        flux = -2.0 * np.real(np.conj(amplitudes) * amplitudes[:, k, None] * couplings[:, :, k])
        g = np.maximum(flux, 0.0) * tau / np.where(alive, population, 1.0)[:, None]
        g[:, k] = 0.0
        g[~alive] = 0.0
        summed = g.sum(axis=0)
        staying = float(np.prod(np.maximum(1.0 - g.sum(axis=1), 0.0)))
        self.coefficients = c
        # a hop in any substep, shared among the targets by their flux: the plain sum of the
        # substep probabilities would overcount where a crossing takes only a few steps
        total = summed.sum()
        return summed * ((1.0 - staying) / total) if total > 0.0 else summed

    def _fssh_hop(self, probabilities, energies, nacs) -> bool:
        if self.prevent_back_hop:
            probabilities[self.state + 1 :] = 0.0
        if not probabilities.any():
            return False
        draw = self.rng.random()
        cumulative, target = 0.0, None
        for state in np.flatnonzero(probabilities):
            cumulative += probabilities[state]
            if draw < cumulative:
                target = int(state)
                break
        if target is None:
            return False
        record = {
            "time": self._time_fs(),
            "from": self.state,
            "to": target,
            "probability": float(min(probabilities[target], 1.0)),
            "accepted": True,
            "frustrated": False,
        }
        self.hops.append(record)
        # p' = p − γ d with ½Σ(p − γd)²/m = ½Σp²/m + E_k − E_l: aγ² − bγ + (E_l − E_k) = 0
        direction = nacs[self.state, target]
        masses = self.atoms.get_masses()[:, None]
        momenta = self.atoms.get_momenta()
        a = 0.5 * np.sum(direction**2 / masses)
        b = np.sum(momenta * direction / masses)
        discriminant = b * b - 4.0 * a * (energies[target] - energies[self.state])
        if a <= 0.0 or discriminant < 0.0:
            record.update(accepted=False, frustrated=True)
            return False
        root = math.sqrt(discriminant)
        gamma = (b - root) / (2.0 * a) if b >= 0 else (b + root) / (2.0 * a)
        self.atoms.set_momenta(momenta - gamma * direction)
        self._set_state(target)
        return True

    def _decay_of_mixing(self, energies) -> None:
        k, c = self.state, self.coefficients
        kinetic = self.atoms.get_kinetic_energy()
        if kinetic <= 0.0 or abs(c[k]) == 0.0:
            return
        others = np.arange(self.n_states) != k
        gaps = np.abs(energies[others] - energies[k])
        rates = gaps / (HBAR * (1.0 + self.decoherence / kinetic))
        c[others] *= np.exp(-rates * self.dt)
        rest = np.sum(np.abs(c[others]) ** 2)
        c[k] *= math.sqrt(max(1.0 - rest, 0.0)) / abs(c[k])

    def todict(self):
        d = super().todict()
        d.update(algorithm=self.algorithm, state=self.state, prevent_back_hop=self.prevent_back_hop)
        return d
