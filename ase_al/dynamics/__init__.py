"""Nonadiabatic dynamics: trajectory surface hopping as ASE ``MolecularDynamics``.

>>> from ase_al.dynamics import SurfaceHopping, run_ensemble
>>> atoms.calc = ase_al.methods("TDA-B3LYP/6-31G*", n_states=3)   # S0, S1, S2
>>> SurfaceHopping(atoms, 0.25 * units.fs, initial_state=2, trajectory="sh.traj").run(400)
"""

from ase_al.dynamics.ensemble import choose_initial_states, populations, run_ensemble
from ase_al.dynamics.models import (
    TriatomicAvoidedCrossing,
    TullySimpleAvoidedCrossing,
    tully_particle,
)
from ase_al.dynamics.surface_hopping import SurfaceHopping, lzbl_probability

__all__ = [
    "SurfaceHopping",
    "TriatomicAvoidedCrossing",
    "TullySimpleAvoidedCrossing",
    "tully_particle",
    "choose_initial_states",
    "lzbl_probability",
    "populations",
    "run_ensemble",
]
