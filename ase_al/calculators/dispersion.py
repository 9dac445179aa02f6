"""DFT-D4 dispersion through dftd4's ASE calculator, picklable for worker processes.

Imported only when D4 is asked for (dftd4 is the optional ``d4`` extra).
"""

from __future__ import annotations

from dftd4.ase import DFTD4

from ase_al.options import StrictParameters


class D4(StrictParameters, DFTD4):
    """dftd4's ``DFTD4`` calculator (energy in eV, forces in eV/Å) that can be pickled: the
    library handle is dropped from the pickled state and rebuilt on first use."""

    def __getstate__(self):
        return {**self.__dict__, "_disp": None}
