"""Optimisation on a model with an uncertainty, stopped at the first uncertain structure.

The dynamics of active learning starts from the reference's minima and saddle points and
goes where thermal motion takes it. An optimisation on the learned surface goes elsewhere:
downhill on the *model*, into a minimum that has moved, or into a well the reference does not
have (a weakly bound complex on a flat surface is the typical case). Following that path
and labelling its first uncertain structure puts data where a user's optimisation on the
finished model will go.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError

from ase_al.errors import require


@dataclass
class Relaxation:
    """The outcome of :func:`relax_until_uncertain`: the first uncertain structure (or None),
    the steps taken, whether the optimisation converged (on the model, all structures
    certain), and the largest uncertainty met (eV)."""

    uncertain: Atoms | None
    steps: int
    converged: bool
    max_uncertainty: float
    path: list

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("uncertain", "path")} | {
            "found_uncertain": self.uncertain is not None
        }


def relax_until_uncertain(
    atoms: Atoms,
    model: Calculator,
    uq_threshold: float,
    saddle: bool = False,
    fmax: float = 1e-3,
    steps: int = 300,
    labelled: list[Atoms] | None = None,
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
        (within 1e-6 Å) does not stop the path, which goes on to the next uncertain one
        (labelling it again would add nothing; the uncertainty of a labelled structure above
        the threshold is the model's floor there).

    Returns a :class:`Relaxation`; its ``uncertain`` structure carries the model's energy
    and uncertainty in ``info`` (``model_energy``, ``uncertainty``) and no calculator, and its
    ``path`` holds every structure visited (ase gui).
    """
    probe = atoms.copy()
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
    path, largest, taken = [], 0.0, 0
    converged = False
    for done in optimizer.irun(fmax=fmax, steps=steps):
        converged = done
        # asked of the model for this structure: Sella also evaluates displaced geometries
        u = float(np.max(model.get_property("energy_uncertainty", probe)))
        frame = probe.copy()
        frame.info.update(model_energy=float(model.get_property("energy", probe)), uncertainty=u)
        path.append(frame)
        largest = max(largest, u)
        seen = len(known) and np.abs(known - frame.positions).max(axis=(1, 2)).min() < 1e-6
        if u > uq_threshold and not seen:
            return Relaxation(frame, taken, False, largest, path)
        taken += 1
    return Relaxation(None, max(taken - 1, 0), bool(converged), largest, path)


__all__ = ["Relaxation", "relax_until_uncertain"]
