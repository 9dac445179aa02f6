"""Transition states and reaction outcomes.

* :func:`find_transition_state`: a first-order saddle point by Sella (P-RFO in internal
  coordinates; PyPI ``sella``, the ASE community's saddle-point optimiser), confirmed by a
  harmonic analysis with exactly one imaginary mode.
* :func:`descend_from_saddle`: the two minima a saddle point connects, by displacing along the
  imaginary mode both ways and relaxing (an intrinsic-reaction-coordinate-like descent).
* :func:`barrier`: a potential's own barrier from guesses of its saddle point and reactants
  (e.g. a learned potential's, from the reference's), with the species its minimum holds.
* :func:`connectivity`, :func:`bonds_formed_and_broken`, :func:`classify`: which species a
  structure holds, from covalent radii through ``ase.neighborlist``, so that trajectory ends can
  be sorted into reactant / product / other with fractions and binomial error bars.
* :func:`propagate_both_ways`: quasi-classical trajectories forward and backward (momenta
  reversed) from each initial condition, e.g. from
  :func:`ase_al.samplers.transition_state_sampling`; :meth:`Outcomes.direct` counts those that
  join reactant and product.
* :class:`ShiftedBarrierTop`: a potential with its barrier top moved along the reaction
  coordinate, to measure how much a trajectory outcome hangs on where the top lies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import covalent_radii

from ase_al.errors import check_atoms, require


class TransitionStateError(ValueError):
    """The saddle-point search did not end at a first-order saddle point.

    ``atoms`` and ``vibrations``: the stationary point it did find and its harmonic analysis
    (None when the search did not converge), to look at (``ase gui``) or to use knowingly.
    """

    def __init__(self, message: str, atoms: Atoms | None = None, vibrations=None):
        super().__init__(message)
        self.atoms = atoms
        self.vibrations = vibrations


def find_transition_state(
    atoms: Atoms,
    calc: Calculator | None = None,
    fmax: float = 1e-3,
    steps: int = 500,
    internal: bool = True,
    trajectory: str | None = None,
    logfile: str | None = None,
):
    """A first-order saddle point near ``atoms`` and its harmonic analysis.

    Parameters
    ----------
    atoms : Atoms
        A guess of the transition structure (left untouched): e.g. the highest image of a NEB,
        or a structure between reactant and product.
    calc : Calculator or str, optional
        The potential (or a method name); defaults to ``atoms.calc``.
    fmax : float
        Convergence on the largest force, eV/Å.
    steps : int
        Maximum Sella steps.
    internal : bool
        Sella's internal coordinates (default; robust for molecules).
    trajectory, logfile : str, optional
        Sella's trajectory file (``ase gui``) and log (``"-"`` for standard output).

    Returns
    -------
    (Atoms, HarmonicAnalysis)
        The saddle point (``calc`` attached; ``info["imaginary_frequency"]`` in cm⁻¹ as a
        negative number) and its vibrations; ``vibrations.modes[0]`` is the reaction coordinate.

    Raises
    ------
    TransitionStateError
        If Sella did not converge, or the structure it found has no imaginary mode or more
        than one (|ν| > 50 cm⁻¹ counts); the error's ``atoms`` and ``vibrations`` are then
        that structure and its analysis.
    """
    require("sella", "ts")
    from sella import Sella

    from ase_al.simulations import IMAGINARY_CM1, freq, resolve_calculator

    check_atoms(atoms)
    calc = resolve_calculator(calc, atoms, "find_transition_state")
    saddle = atoms.copy()
    saddle.calc = calc
    optimizer = Sella(saddle, order=1, internal=internal, trajectory=trajectory, logfile=logfile)
    if not optimizer.run(fmax=fmax, steps=steps):
        raise TransitionStateError(
            f"no saddle point within {steps} Sella steps (fmax {fmax} eV/Å): start from a "
            "better guess, e.g. the highest image of a NEB"
        )
    vibrations = freq(saddle, calc)
    imaginary = vibrations.frequencies[vibrations.frequencies < IMAGINARY_CM1]
    if len(imaginary) != 1:
        raise TransitionStateError(
            f"the stationary point found has {len(imaginary)} imaginary modes "
            f"({np.round(imaginary, 1).tolist()} cm-1), not one: it is "
            + ("a minimum" if len(imaginary) == 0 else "a higher-order saddle point"),
            atoms=saddle,
            vibrations=vibrations,
        )
    saddle.info["imaginary_frequency"] = float(imaginary[0])
    saddle.info["transition_state"] = True
    return saddle, vibrations


def descend_from_saddle(
    saddle: Atoms,
    vibrations,
    calc: Calculator | None = None,
    displacement: float = 0.1,
    fmax: float = 1e-3,
    steps: int = 1000,
) -> tuple[Atoms, Atoms]:
    """The minima on both sides of a saddle point: the structure displaced by ±``displacement``
    (Å, largest atomic displacement) along the imaginary mode, each relaxed. Returns
    ``(backward, forward)``; forward is along ``+modes[0]``. The minima do not inherit the
    saddle point's marks (``info["transition_state"]``, ``info["imaginary_frequency"]``), so
    they can be given to :class:`ase_al.ActiveLearner` as minima."""
    from ase_al.simulations import optimize_geometry

    calc = calc if calc is not None else saddle.calc
    mode = np.asarray(vibrations.modes[int(np.argmin(vibrations.frequencies))])
    mode = mode / np.abs(mode).max()
    ends = []
    for sign in (-1.0, 1.0):
        start = saddle.copy()
        for key in ("transition_state", "imaginary_frequency"):
            start.info.pop(key, None)
        start.positions += sign * displacement * mode
        ends.append(optimize_geometry(start, calc, fmax=fmax, steps=steps))
    return ends[0], ends[1]


@dataclass
class Barrier:
    """A potential's own barrier: its saddle point (with ``vibrations``), its minimum on the
    reactant side, the barrier (eV) between them, the species the minimum is made of, and
    the imaginary frequencies (cm⁻¹) of the saddle point (one for a first-order saddle
    point; the search's :class:`TransitionStateError` otherwise, kept in ``problem``)."""

    saddle: Atoms
    vibrations: object
    minimum: Atoms
    energy: float
    species: list
    imaginary_cm1: list
    problem: str | None = None


def barrier(
    calc: Calculator,
    saddle_guess: Atoms,
    reactant_guess: Atoms,
    fmax: float = 1e-3,
    steps: int = 2000,
) -> Barrier:
    """The barrier of ``calc`` (a learned potential, or a method) from its own stationary
    points: the saddle point found by :func:`find_transition_state` from ``saddle_guess`` and
    the minimum optimised (``fmax`` eV/Å, at most ``steps``) from ``reactant_guess``.

    Used on a learned potential with the reference's saddle point and reactants as guesses.
    A search that ends at a stationary point which is not first order still gives a barrier
    there, with ``problem`` saying so; one that does not converge raises. Check
    :attr:`Barrier.species` before trusting the number: an optimisation on a flat surface
    (a weakly bound complex) can leave the reactants' basin.
    """
    from ase_al.simulations import IMAGINARY_CM1, optimize_geometry

    problem = None
    try:
        saddle, vibrations = find_transition_state(saddle_guess, calc)
    except TransitionStateError as err:
        if err.atoms is None:
            raise
        saddle, vibrations, problem = err.atoms, err.vibrations, str(err)
    minimum = optimize_geometry(reactant_guess, calc, fmax=fmax, steps=steps)
    return Barrier(
        saddle=saddle,
        vibrations=vibrations,
        minimum=minimum,
        energy=float(saddle.get_potential_energy() - minimum.get_potential_energy()),
        species=species(minimum),
        imaginary_cm1=[float(v) for v in vibrations.frequencies if v < IMAGINARY_CM1],
        problem=problem,
    )


def connectivity(atoms: Atoms, scale: float = 1.3) -> np.ndarray:
    """Bond matrix (N, N) of booleans: atoms closer than ``scale`` × the sum of their
    covalent radii (ASE's ``natural_cutoffs``, i.e. ``ase.data.covalent_radii``). The default
    1.3 keeps a C–H bond bonded through zero-point-level stretches (1.39 Å) and a C–C bond up
    to 1.98 Å, while a C···C distance of 2.3 Å (a Diels–Alder transition state) is no bond."""
    from ase.neighborlist import NeighborList, natural_cutoffs

    cutoffs = natural_cutoffs(atoms, mult=scale)  # bonded: d < scale (r_i + r_j)
    neighbours = NeighborList(cutoffs, self_interaction=False, bothways=True, skin=0.0)
    neighbours.update(atoms)
    bonds = np.zeros((len(atoms), len(atoms)), dtype=bool)
    for i in range(len(atoms)):
        for j in neighbours.get_neighbors(i)[0]:
            bonds[i, j] = True
    return bonds


def fragments(atoms: Atoms, scale: float = 1.3) -> list[np.ndarray]:
    """The atom indices of each connected fragment (molecule) of ``atoms``, bonded as
    :func:`connectivity` says."""
    from scipy.sparse.csgraph import connected_components

    n, labels = connected_components(connectivity(atoms, scale), directed=False)
    return [np.flatnonzero(labels == k) for k in range(n)]


def species(atoms: Atoms, scale: float = 1.3) -> list[str]:
    """Chemical formulas of the connected fragments (sorted), e.g. ``['CH4', 'H2O']``."""
    return sorted(atoms[part].get_chemical_formula() for part in fragments(atoms, scale))


def bonds_formed_and_broken(start: Atoms, end: Atoms, scale: float = 1.3):
    """Pairs (i, j), i < j, bonded in ``end`` but not in ``start`` (formed) and the reverse
    (broken)."""
    a, b = connectivity(start, scale), connectivity(end, scale)
    upper = np.triu(np.ones_like(a), 1)
    formed = [tuple(p) for p in np.argwhere(b & ~a & upper)]
    broken = [tuple(p) for p in np.argwhere(a & ~b & upper)]
    return formed, broken


@dataclass
class Outcomes:
    """Classified trajectory ends: ``labels[k]`` is ``"reactant"``, ``"product"`` or
    ``"other"``; ``fractions`` and ``errors`` (binomial standard errors √(p(1−p)/n)) by label;
    ``bond_times`` per trajectory: for each bond formed relative to the reactant, the time (fs)
    at which it formed (None if it did not; see :func:`classify`)."""

    labels: list[str]
    fractions: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    bond_times: list = field(default_factory=list)

    def write(self, trajectories, directory) -> dict:
        """The last frame of every trajectory into ``<directory>/<label>.traj`` (one file per
        class, readable by ``ase gui``); returns {label: path}."""
        from pathlib import Path

        from ase.io import write

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ends: dict[str, list] = {}
        for label, frames in zip(self.labels, trajectories, strict=True):
            ends.setdefault(label, []).append(list(frames)[-1])
        paths = {}
        for label, frames in ends.items():
            paths[label] = directory / f"{label}.traj"
            write(paths[label], frames)
        return paths

    def joins(self) -> list[bool]:
        """For halves classified in pairs, as :func:`propagate_both_ways` gives them (forward
        then backward of each initial condition): per trajectory, whether its two ends are
        the reactant and the product (a *direct* trajectory)."""
        if len(self.labels) % 2:
            raise ValueError(
                f"{len(self.labels)} trajectories classified: direct() needs forward and "
                "backward halves in pairs"
            )
        pairs = (sorted(self.labels[k : k + 2]) for k in range(0, len(self.labels), 2))
        return [ends == ["product", "reactant"] for ends in pairs]

    def direct(self) -> tuple[int, float, float]:
        """For halves in pairs (see :meth:`joins`): the number of direct trajectories, their
        fraction and its binomial standard error."""
        joins = self.joins()
        count, n = sum(joins), len(joins)
        fraction = count / n
        return count, fraction, math.sqrt(fraction * (1 - fraction) / n)

    def summary(self) -> dict:
        """For halves in pairs (see :meth:`direct`), as JSON: the direct trajectories
        (``direct``, ``direct_fraction`` and its standard error ``direct_fraction_error``), the
        ``end_fractions`` of the halves, the bond-formation gaps (``bond_formation_gaps_fs``,
        see :meth:`asynchronicity`) with their mean and its standard error (``gap_mean_fs``,
        ``gap_error_fs``; None with too few)."""
        count, fraction, error = self.direct()
        gaps = [float(g) for g in self.asynchronicity()]
        return {
            "direct": count,
            "direct_fraction": fraction,
            "direct_fraction_error": error,
            "end_fractions": dict(self.fractions),
            "bond_formation_gaps_fs": gaps,
            "gap_mean_fs": float(np.mean(gaps)) if gaps else None,
            "gap_error_fs": float(np.std(gaps, ddof=1) / math.sqrt(len(gaps)))
            if len(gaps) > 1
            else None,
        }

    def asynchronicity(self) -> list[float]:
        """For trajectories that formed two or more bonds: the time (fs) between the first and
        the last bond formation (0 for a synchronous reaction)."""
        return [gap for gap in self.gaps() if gap is not None]

    def gaps(self) -> list[float | None]:
        """Per trajectory, in order: the time (fs) between its first and last bond formation,
        or None where it formed fewer than two bonds (see :meth:`asynchronicity`); for
        comparing two potentials trajectory by trajectory."""
        gaps = []
        for times in self.bond_times:
            formed = [t for t in times.values() if t is not None]
            gaps.append(max(formed) - min(formed) if len(formed) >= 2 else None)
        return gaps


def classify(
    trajectories,
    reactant: Atoms,
    product: Atoms,
    time_step_fs: float | None = None,
    scale: float = 1.3,
    end_fs: float | None = None,
    bond_time_scale: float | None = None,
) -> Outcomes:
    """Sort trajectories by what their last frame holds: the reactant's bond pattern, the
    product's, or another. ``trajectories`` are lists of Atoms (frames in order, e.g.
    ``ase.io.read(path, ":")``); ``time_step_fs`` between frames gives ``bond_times``.

    ``end_fs`` (with ``time_step_fs``): the end's bond pattern is instead each atom pair's in
    most frames of the last ``end_fs`` fs (ties: bonded). A hot product is not another
    species because one bond is stretched past the cutoff in its last frame: of the 200
    halves of 100 Diels-Alder trajectories on GFN2-xTB, 17 ended as "other" at 100 fs that
    were cyclohexene over their last 20 fs (formed with 63.7 kcal/mol to spare, the former
    ethene C-C bond or a C-H bond caught at the far end of a vibration). An outcome reached
    within the last ``end_fs`` / 2 is not yet counted.

    ``bond_times``: for each bond the product has and the reactant lacks that the end holds,
    the time (fs from the first frame) at which its atoms first came within
    ``bond_time_scale`` × the sum of their covalent radii (default ``scale``; 1.6 / 1.52 =
    1.053 puts a formed C–C bond at 1.6 Å, as Diels–Alder dynamics usually do). The first
    approach, not the last: a newly formed bond is hot. In GFN2-xTB's 200 Diels–Alder
    halves, 16 new C–C bonds came within 1.22–1.32 Å and rebounded to 1.98–2.14 Å, past the
    1.98 Å cutoff; timed by their last formation they were 32–43 fs late, and the mean gap
    between the two bonds was 13.4 fs instead of 7.4 (3.8 fs at 1.6 Å)."""
    from ase_al.options import check_number

    if check_number("bond_time_scale", bond_time_scale, minimum=0.0, optional=True) == 0.0:
        raise ValueError("bond_time_scale must be positive, got 0")
    if end_fs is not None and (time_step_fs is None or not end_fs >= 0):
        raise ValueError(
            f"end_fs={end_fs!r}: a window at the end needs time_step_fs and end_fs >= 0 (fs)"
        )
    reference = {
        "reactant": connectivity(reactant, scale),
        "product": connectivity(product, scale),
    }
    target_bonds = [
        tuple(p) for p in np.argwhere(np.triu(reference["product"] & ~reference["reactant"], 1))
    ]
    radii = covalent_radii[reactant.numbers]
    cutoff = (scale if bond_time_scale is None else bond_time_scale) * (
        radii[:, None] + radii[None, :]
    )
    labels, times = [], []
    for frames in trajectories:
        frames = list(frames)
        if not frames:
            raise ValueError("an empty trajectory cannot be classified")
        # every frame's bonds when the bond times are asked for, else the last frame's only
        history = [
            connectivity(f, scale) for f in (frames if time_step_fs is not None else frames[-1:])
        ]
        end = history[-1]
        if end_fs is not None:
            window = history[-(int(end_fs / time_step_fs + 1e-9) + 1) :]
            end = 2 * np.sum(window, axis=0) >= len(window)
        label = next(
            (name for name, bonds in reference.items() if np.array_equal(end, bonds)),
            "other",
        )
        labels.append(label)
        if time_step_fs is not None:
            per_bond = {}
            for i, j in target_bonds:
                formed = None
                if end[i, j]:  # the first frame within the bond-time cutoff
                    within = [f.get_distance(i, j, mic=True) < cutoff[i, j] for f in frames]
                    formed = float(np.argmax(within)) * time_step_fs if any(within) else None
                per_bond[(int(i), int(j))] = formed
            times.append(per_bond)
    n = len(labels)
    if n == 0:
        raise ValueError("no trajectories to classify")
    fractions = {name: labels.count(name) / n for name in ("reactant", "product", "other")}
    errors = {name: math.sqrt(p * (1 - p) / n) for name, p in fractions.items()}
    return Outcomes(labels, fractions, errors, times)


def _both_ways(start: Atoms, calc, steps: int, time_step_fs: float, interval: int):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    halves = []
    for direction in (1.0, -1.0):
        atoms = start.copy()
        atoms.set_momenta(direction * start.get_momenta())
        atoms.calc = calc
        frames: list[Atoms] = []
        dynamics = VelocityVerlet(atoms, time_step_fs * units.fs)
        dynamics.attach(lambda a=atoms, f=frames: f.append(_frame(a)), interval=interval)
        dynamics.run(steps)
        halves.append(frames[1:])  # the first call is the start itself
    return halves


def _frame(atoms: Atoms) -> Atoms:
    """:func:`ase_al.io.storable` copy holding this step's energy (eV) and forces (eV/Å)."""
    from ase_al.io import storable

    atoms.get_potential_energy()  # velocity Verlet asks for the forces only
    return storable(atoms)


def propagate_both_ways(
    starts,
    calc: Calculator,
    time_fs: float = 100.0,
    time_step_fs: float = 0.5,
    interval: int = 2,
    executor=None,
    progress: bool | None = None,
) -> list[tuple[list[Atoms], list[Atoms]]]:
    """Quasi-classical trajectories from each initial condition, forward and backward.

    Each start (positions in Å and momenta, e.g. from
    :func:`ase_al.samplers.transition_state_sampling`) is propagated for ``time_fs`` fs with
    velocity Verlet (NVE, ``time_step_fs`` fs) as given, and again with all momenta reversed;
    together the two halves are one trajectory through the start (for a transition state:
    from one side of the barrier to the other).

    Parameters
    ----------
    starts : list of Atoms
    calc : Calculator
        The potential (a learned model or a reference method).
    interval : int
        Steps between kept frames (the start itself is not kept: frame k is at
        (k + 1) · interval · time_step_fs fs).
    executor : concurrent.futures.Executor, optional
        Where the trajectories run (one task per start): by default in this process (right
        for a fast learned potential); ``ase_al.executors.default_executor()`` spreads a
        reference method over the cores.

    Returns ``[(forward_frames, backward_frames), ...]`` in the order of ``starts``; every
    frame carries its energy (eV) and forces (eV/Å). :func:`classify` the flattened list and
    :meth:`Outcomes.direct` counts the trajectories that join reactant and product.
    """
    from tqdm.auto import tqdm

    from ase_al.executors import SerialExecutor, check_shippable
    from ase_al.options import check_int, check_number

    starts = list(starts)
    if not starts:
        raise ValueError("propagate_both_ways needs at least one initial condition")
    for atoms in starts:
        check_atoms(atoms)
    check_number("time_fs", time_fs, minimum=0.0)
    check_number("time_step_fs", time_step_fs, minimum=1e-6)
    interval = check_int("interval", interval, minimum=1)
    steps = int(round(time_fs / time_step_fs))
    executor = SerialExecutor() if executor is None else executor
    check_shippable(calc, "potential", executor)
    futures = [
        executor.submit(_both_ways, start, calc, steps, time_step_fs, interval) for start in starts
    ]
    pairs = []
    disable = None if progress is None else not progress
    for future in tqdm(futures, desc="trajectories (both ways)", disable=disable):
        forward, backward = future.result()
        pairs.append((forward, backward))
    return pairs


class ShiftedBarrierTop(Calculator):
    """``calc`` with its barrier top moved by ``shift`` along a saddle point's reaction
    coordinate: how sensitive are the outcomes of transition-state trajectories to a model's
    top lying off the reference's?

    Adds V = |λ|·shift·q·exp(-(q/width)²) to ``calc``'s energy (and its forces), q being the
    mass-weighted displacement (Å·amu^1/2) from ``saddle`` along the imaginary mode of
    ``vibrations`` (its sign as given there), |λ| that mode's curvature. Near the top,
    -½|λ|q² + |λ|·shift·q = -½|λ|(q - shift)² + const: the top moves by ``shift`` (to first
    order in it); the Gaussian keeps the change local (``width`` in Å·amu^1/2, default 1, about
    four thermal widths of the Diels-Alder reaction coordinate at 300 K) so that reactants and
    products are untouched. The mean force along the coordinate that
    :func:`ase_al.samplers.modes.check_barrier_top` measures on this surface is shifted by
    exactly -|λ|·shift at the saddle point's dividing surface (q = 0). The projection is
    in the saddle point's frame: meant for the first tens of femtoseconds around the top,
    which is where the Gaussian lets it act.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, calc, saddle: Atoms, vibrations, shift: float, width: float = 1.0):
        from ase_al.samplers.modes import reaction_coordinate

        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0 (Å·amu^1/2), got {width}")
        self.calc, self.shift, self.width = calc, float(shift), float(width)
        self.origin = saddle.positions.ravel().copy()
        k, direction, curvature = reaction_coordinate(saddle, vibrations)
        #: dq/dx (amu^1/2): the mass-weighted mode times √m
        self.gradient = vibrations.mass_weighted_modes[k] * np.repeat(saddle.get_masses(), 3) ** 0.5
        self.strength = curvature * self.shift  # eV/(Å·amu^1/2)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.calc
        q = float(self.gradient @ (self.atoms.positions.ravel() - self.origin))
        g = math.exp(-((q / self.width) ** 2))
        dv = self.strength * g * (1 - 2 * q**2 / self.width**2) * self.gradient
        self.results = {
            "energy": work.get_potential_energy() + self.strength * q * g,
            "forces": work.get_forces() - dv.reshape(-1, 3),
        }
