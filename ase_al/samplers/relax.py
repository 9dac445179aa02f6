"""Optimisation on a model with an uncertainty: the uncertain structures along its path (the
first, or a ladder of them to the end of the path).

The dynamics of active learning starts from the reference's minima and saddle points and
goes where thermal motion takes it. An optimisation on the learned surface goes elsewhere:
downhill on the *model*, into a minimum that has moved, or into a well the reference does not
have (a weakly bound complex on a flat surface is the typical case). Following that path
and labelling its uncertain structures puts data where a user's optimisation on the
finished model will go.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError

from ase_al.errors import require


@dataclass
class Relaxation:
    """The outcome of :func:`relax_until_uncertain`: the uncertain structures taken (the
    first, and with a ``ladder`` the later ones), the step of each, the steps taken, whether
    the optimisation converged (on the model), the largest uncertainty met (eV), every
    structure visited (``path``) and whether the path's end is at the geometry of a
    structure labelled already (``end_labelled``)."""

    uncertain: list
    uncertain_steps: list
    steps: int
    converged: bool
    max_uncertainty: float
    path: list
    end_labelled: bool = False
    #: the path was stopped where two atoms came closer than :data:`COLLAPSE` times the sum
    #: of their covalent radii (a hole in the model's surface: nothing past it is labelled)
    collapsed: bool = False

    def summary(self) -> dict:
        return {
            "found_uncertain": bool(self.uncertain),
            "uncertain_steps": list(self.uncertain_steps),
            "steps": self.steps,
            "converged": self.converged,
            "max_uncertainty": self.max_uncertainty,
            "collapsed": self.collapsed,
        }


#: two atoms closer than this fraction of the sum of their covalent radii have collapsed:
#: a bond stretched or squeezed by a hot vibration keeps 0.8 of it or more, while the
#: structures a model's hole leads to lie at 0.01-0.56 and 30-5700 eV above any
#: physical one (GFN2-xTB, the Diels-Alder complex relaxed on early networks)
COLLAPSE = 0.6


def collapsed(atoms: Atoms) -> bool:
    """Whether two atoms of ``atoms`` are closer than :data:`COLLAPSE` times the sum of their
    covalent radii: bonded by :func:`ase_al.reactions.connectivity` at that scale (periodic
    images included)."""
    from ase_al.reactions import connectivity

    return bool(connectivity(atoms, COLLAPSE).any())


def rms_displacement(a: Atoms, b: Atoms) -> float:
    """The RMS over the atoms of their displacement from ``a`` to ``b`` (Å; no alignment)."""
    return float(np.sqrt(((b.positions - a.positions) ** 2).sum(axis=1).mean()))


def along_path(path: list[Atoms], spacing: float, at_most: int, skip=()) -> list[int]:
    """Steps of an optimisation ``path`` spread evenly by their distance from its start: with
    D the end's RMS displacement from the start (Å, over the atoms), n = min(``at_most``,
    floor(D / ``spacing``)) steps, each the first to reach j·D/(n + 1), j = 1 … n (none when
    the end is within ``spacing`` of the start). The start, the end and the steps in
    ``skip`` are left out, so fewer may come back.

    A model's relaxation of a weakly bound complex drifts for a hundred steps where the
    surface is flat and then slides a few tenths of an ångström into a well: steps spread
    by distance land on the slide, not on the drift."""
    if not spacing > 0:
        raise ValueError(f"spacing must be a distance above 0 Å, got {spacing!r}")
    d = np.array([rms_displacement(path[0], frame) for frame in path])
    n = min(int(at_most), int(d[-1] // spacing))
    steps = []
    for j in range(1, n + 1):
        step = int(np.argmax(d >= j * d[-1] / (n + 1)))
        if 0 < step < len(path) - 1 and step not in skip and step not in steps:
            steps.append(step)
    return steps


def relax_until_uncertain(
    atoms: Atoms,
    model: Calculator,
    uq_threshold: float,
    saddle: bool = False,
    fmax: float = 1e-3,
    steps: int = 300,
    labelled: list[Atoms] | None = None,
    ladder: float | None = None,
) -> Relaxation:
    """Optimise ``atoms`` on ``model`` until converged, ``steps`` are taken, or a structure's
    ``energy_uncertainty`` (eV) exceeds ``uq_threshold``.

    Parameters
    ----------
    atoms : Atoms
        The start (not changed).
    model : Calculator
        Reports ``energy`` (eV), ``forces`` (eV/Å) and ``energy_uncertainty`` (eV): a
        :class:`~ase_al.calculators.Committee` or
        :class:`~ase_al.calculators.UncertainModel`.
    saddle : bool
        A first-order saddle point by Sella (``order=1``, internal coordinates) instead of a
        minimum by BFGS.
    fmax : float
        Convergence, eV/Å.
    labelled : list of Atoms, optional
        Structures already labelled: an uncertain structure at one of their geometries
        (within 1e-6 Å) is not taken, and the path goes on (labelling it again would add
        nothing; the uncertainty of a labelled structure above the threshold is the model's
        floor there).
    ladder : float, optional
        With a factor > 1, the optimisation goes on past the first uncertain structure, to
        the end of the path, and also takes each structure whose uncertainty exceeds
        ``ladder`` times that of the last one taken: a path that runs into a hole of the
        model (a spurious well, atoms pressed together) gives structures from its rim to its
        bottom, about log(max/threshold)/log(ladder) of them, instead of one at the rim.
        The path's last structure (the model's own minimum or saddle point when converged)
        is also taken when it is above ``uq_threshold``, however uncertain the last one taken
        was: in a Diels-Alder run the ethene-butadiene complex slid on the model into wells
        7-12 kcal/mol too deep (0.85-1.5 eV uncertain) without the uncertainty ever doubling
        along the way, and those ends, where an optimisation on the finished model lands,
        were never labelled.

    Returns a :class:`Relaxation`; its structures (``uncertain`` and ``path``) carry the
    model's energy and uncertainty in ``info`` (``model_energy``, ``uncertainty``; nothing
    of the start's ``info``) and no calculator.
    """
    if ladder is not None and not ladder > 1.0:
        raise ValueError(f"ladder must be a factor above 1, got {ladder!r}")
    probe = atoms.copy()
    probe.info = {}  # the start's labels (reference_energy, ...) do not hold along the path
    probe.calc = model
    try:
        model.get_property("energy_uncertainty", probe)
    except (PropertyNotImplementedError, NotImplementedError, ValueError) as err:
        raise ValueError(
            "relax_until_uncertain needs a model that reports an energy_uncertainty (eV); "
            f"{type(model).__name__} does not ({err})"
        ) from None
    if saddle:
        require("sella", "ts")
        from sella import Sella

        optimizer = Sella(probe, order=1, internal=True, logfile=None)
    else:
        from ase.optimize import BFGS

        optimizer = BFGS(probe, logfile=None)
    known = [a.positions for a in labelled or () if np.array_equal(a.numbers, atoms.numbers)]
    known = np.array(known) if known else np.empty((0, len(atoms), 3))

    def seen(frame) -> bool:
        """``frame`` is at the geometry of a structure labelled already."""
        return bool(len(known)) and np.abs(known - frame.positions).max(axis=(1, 2)).min() < 1e-6

    path, taken, taken_steps, bar = [], [], [], uq_threshold
    converged = hole = False
    for step, done in enumerate(optimizer.irun(fmax=fmax, steps=steps)):
        if path and collapsed(probe):  # into a hole of the model: stop before it
            converged, hole = False, True
            break
        converged = done
        # asked of the model for this structure: Sella also evaluates displaced geometries
        u = float(np.max(model.get_property("energy_uncertainty", probe)))
        frame = probe.copy()
        frame.info.update(model_energy=float(model.get_property("energy", probe)), uncertainty=u)
        path.append(frame)
        if u > bar and not seen(frame):
            taken.append(frame)
            taken_steps.append(step)
            if ladder is None:
                break
            bar = ladder * u
    end = path[-1]  # irun yields the starting structure at least
    end_labelled = seen(end)
    if (
        ladder is not None
        and end.info["uncertainty"] > uq_threshold
        and not (taken and taken[-1] is end)
        and not end_labelled
    ):
        # the end of the path, the model's own stationary point: where an optimisation on
        # the finished model lands (and a learned barrier is measured); on a flat surface the
        # path can slide into a deep spurious well without ever becoming twice as uncertain
        taken.append(end)
        taken_steps.append(len(path) - 1)
    largest = max(f.info["uncertainty"] for f in path)
    finished = bool(converged) and (ladder is not None or not taken)
    return Relaxation(
        taken, taken_steps, len(path) - 1, finished, largest, path, end_labelled, hole
    )


__all__ = [
    "COLLAPSE",
    "Relaxation",
    "along_path",
    "collapsed",
    "relax_until_uncertain",
    "rms_displacement",
]
