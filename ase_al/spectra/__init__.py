"""UV/vis absorption spectra by the nuclear ensemble approach (NEA) and single points (SPC)."""

from ase_al.spectra.mlnea import MLNEA
from ase_al.spectra.nea import PREFACTOR, cross_section, excited_states, qc_nea, spc, wavelengths

__all__ = ["MLNEA", "PREFACTOR", "cross_section", "excited_states", "qc_nea", "spc", "wavelengths"]
