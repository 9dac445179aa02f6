"""Where a run's structures come from: one or more starting points (minima and transition
states), each with its normal modes and a weight.

A minimum is sampled from its harmonic Wigner distribution; a transition state
(``atoms.info["transition_state"]``, as :func:`ase_al.find_transition_state` marks it) by
quasi-classical transition-state sampling (real modes Wigner, the reaction coordinate at the
barrier top with a thermal-flux momentum in either direction). A batch of ``n`` is shared among
the points in proportion to their weights (``atoms.info["weight"]``, default 1; largest
remainders, so the counts always add up to ``n``).

A structure of separate molecules (``atoms.info["separated"] = True``: the reactants of a
bimolecular reaction placed apart) is a starting point of its own kind: each molecule is
optimised alone, their arrangement is kept, and the relative translations and rotations
(frequencies near zero, real or imaginary) keep their positions with thermal momenta
(:func:`~ase_al.samplers.wigner`'s ``free_modes``). Its samples put the separated reactants,
the asymptote of every reactive trajectory, in the data: without them a Diels-Alder learning
run's networks put ethene + butadiene pulled apart 9-13 kcal/mol too low at every
iteration, with the pair uncertain there, so that the complex was not bound on them.

Models with a reference geometry (KREG's RE descriptor) use one for all points: the
lowest-energy minimum. The RE descriptor (inverse distances relative to that geometry) is
defined for every structure of the same atoms, so one reference keeps one kernel and one
uncertainty threshold (computed on the pooled validation structures) well defined across
conformers and along a reaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ase_al.files import write_traj
from ase_al.samplers.wigner import transition_state_sampling, wigner
from ase_al.simulations import equilibrium_and_modes

log = logging.getLogger("ase_al")


@dataclass
class StartingPoint:
    """A minimum or a transition state: geometry (with ``calc`` energy in ``energy``), its
    harmonic analysis, its weight among the points."""

    atoms: Atoms
    vibrations: object
    weight: float = 1.0
    saddle: bool = False
    energy: float | None = None
    #: relative translations and rotations of separate molecules (``info["separated"]``)
    free_modes: int = 0


class StartingPoints:
    """The starting points of a run, lowest-energy minimum first among the minima."""

    def __init__(self, points: list[StartingPoint]):
        if not points:
            raise ValueError("a run needs at least one starting structure")
        if all(p.saddle or p.free_modes for p in points):
            raise ValueError(
                "the starting structures are all transition states or separate molecules: give "
                "at least one minimum (the reference geometry of the models' descriptor)"
            )
        weights = np.array([p.weight for p in points], dtype=float)
        if np.any(weights <= 0) or not np.all(np.isfinite(weights)):
            raise ValueError(f"starting-structure weights must be positive, got {weights}")
        self.points = list(points)

    @classmethod
    def single(cls, atoms: Atoms, vibrations) -> StartingPoints:
        return cls([StartingPoint(atoms, vibrations)])

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self):
        return iter(self.points)

    @property
    def reference(self) -> Atoms:
        """The models' reference geometry: the lowest-energy minimum (the only one for a
        single starting structure)."""
        minima = [p for p in self.points if not (p.saddle or p.free_modes)]
        if len(minima) > 1 and all(p.energy is not None for p in minima):
            return min(minima, key=lambda p: p.energy).atoms
        return minima[0].atoms

    def counts(self, n: int) -> list[int]:
        """``n`` shared by weight, largest remainders first."""
        weights = np.array([p.weight for p in self.points], dtype=float)
        exact = n * weights / weights.sum()
        counts = np.floor(exact).astype(int)
        for k in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
            counts[k] += 1
        return counts.tolist()

    def sample(
        self, n: int, temperature: float, rng: np.random.Generator, freeze_below_cm1: float = 0.0
    ) -> list[Atoms]:
        """``n`` structures with momenta from all points (one seed drawn from ``rng`` per
        point; modes below ``freeze_below_cm1`` keep their positions);
        ``info["starting_point"]`` says which."""
        samples = []
        for index, (point, count) in enumerate(zip(self.points, self.counts(n), strict=True)):
            seed = rng.integers(2**32)
            if count == 0:
                continue
            if point.saddle:
                batch = transition_state_sampling(
                    point.atoms,
                    point.vibrations,
                    count,
                    temperature,
                    seed=seed,
                    direction="random",
                    freeze_below_cm1=freeze_below_cm1,
                )
            else:
                batch = wigner(
                    point.atoms,
                    point.vibrations,
                    count,
                    temperature,
                    seed=seed,
                    freeze_below_cm1=freeze_below_cm1,
                    free_modes=point.free_modes,
                )
            if len(self.points) > 1:
                for atoms in batch:
                    atoms.info["starting_point"] = index
            samples.extend(batch)
        return samples


def build_starting_points(molecules, calc, workdir, optimize=True, vibrations=None):
    """The starting points of a run in ``workdir`` (computed once, read back on resume).

    One structure: its equilibrium and modes in ``workdir`` (``equilibrium.traj``,
    ``hessian.npy``), as always. Several: each in ``workdir/starting_points/<k>``, minima
    optimised (unless ``optimize`` is False), transition states
    (``info["transition_state"]``) refined to ``calc``'s saddle point; the reference geometry
    (lowest-energy minimum) goes to ``workdir/equilibrium.traj``.
    """
    workdir = Path(workdir)
    if len(molecules) == 1 and molecules[0].info.get("separated"):
        raise ValueError(
            "the starting structures are all transition states or separate molecules: give "
            "at least one minimum (the reference geometry of the models' descriptor)"
        )
    if len(molecules) == 1:
        equilibrium, modes = equilibrium_and_modes(
            molecules[0], calc, workdir, optimize, vibrations
        )
        log.info("harmonic frequencies / cm-1: %s", np.round(modes.frequencies, 1).tolist())
        return StartingPoints.single(equilibrium, modes)
    points = []
    for k, atoms in enumerate(molecules):
        folder = workdir / "starting_points" / f"{k:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        saddle = bool(atoms.info.get("transition_state", False))
        separated = bool(atoms.info.get("separated", False))
        if saddle and separated:
            raise ValueError(
                f"starting structure {k} is marked both info['transition_state'] and "
                "info['separated']"
            )
        free_modes = free_motions(atoms, k) if separated else 0
        if separated and not (folder / "equilibrium.traj").exists():
            atoms = molecules_optimised_alone(atoms, calc if optimize else None)
        modes = None
        if saddle and not (folder / "equilibrium.traj").exists():
            from ase_al.reactions import TransitionStateError, find_transition_state

            try:
                atoms, modes = find_transition_state(atoms, calc)
            except TransitionStateError as err:
                raise TransitionStateError(
                    f"starting structure {k} is marked info['transition_state'], but {err}",
                    atoms=err.atoms,
                    vibrations=err.vibrations,
                ) from None
        try:
            geometry, modes = equilibrium_and_modes(
                atoms, calc, folder, optimize and not (saddle or separated), modes
            )
        except ValueError as err:
            raise ValueError(f"starting structure {k}: {err}") from None
        probe = geometry.copy()
        probe.calc = calc
        energy = probe.get_potential_energy()
        weight = float(atoms.info.get("weight", 1.0))
        log.info(
            "starting structure %d (%s, weight %g): %.6f eV; frequencies / cm-1: %s",
            k,
            "transition state"
            if saddle
            else f"separate molecules, {free_modes} free modes"
            if separated
            else "minimum",
            weight,
            energy,
            np.round(modes.frequencies, 1).tolist(),
        )
        points.append(StartingPoint(geometry, modes, weight, saddle, energy, free_modes))
    result = StartingPoints(points)
    write_traj(workdir / "equilibrium.traj", [result.reference])
    return result


def free_motions(atoms: Atoms, index: int = 0) -> int:
    """The relative translations and rotations of the separate molecules of ``atoms``: each
    molecule's rigid-body motions (3 for an atom, 5 if linear, else 6) less the whole's 6."""
    from ase_al.reactions import fragments

    parts = fragments(atoms)
    if len(parts) < 2:
        raise ValueError(
            f"starting structure {index} is marked info['separated'] but is one molecule "
            f"({atoms.get_chemical_formula()}): place the molecules apart"
        )
    return sum(rigid_motions(atoms[part]) for part in parts) - rigid_motions(atoms)


def rigid_motions(atoms: Atoms) -> int:
    """3 for one atom, 5 for a linear molecule, else 6."""
    if len(atoms) == 1:
        return 3
    centred = atoms.positions - atoms.get_center_of_mass()
    # second moments of the mass: a line has one non-zero, a plane two
    moments = np.linalg.eigvalsh(np.einsum("i,ij,ik->jk", atoms.get_masses(), centred, centred))
    return 5 if moments[-2] < 1e-6 * max(moments[-1], 1e-12) else 6


def molecules_optimised_alone(atoms: Atoms, calc) -> Atoms:
    """``atoms`` with each molecule (connected fragment) optimised on its own with ``calc``
    (1e-3 eV/Å), the molecules' centres of mass kept; unchanged with no ``calc``."""
    from ase_al.reactions import fragments
    from ase_al.simulations import optimize_geometry

    result = atoms.copy()
    if calc is None:
        return result
    for part in fragments(atoms):
        molecule = atoms[part]
        molecule.info.clear()
        optimised = optimize_geometry(molecule, calc, fmax=1e-3)
        shift = molecule.get_center_of_mass() - optimised.get_center_of_mass()
        result.positions[part] = optimised.positions + shift
    return result
