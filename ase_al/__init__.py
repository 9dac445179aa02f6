"""ase-al: AI-enhanced computational chemistry on ASE.

>>> import ase_al
>>> calc = ase_al.methods("GFN2-xTB")            # any method or model is an ASE calculator
>>> eq = ase_al.optimize_geometry(atoms, calc)    # ase.optimize underneath
>>> vib = ase_al.freq(eq, calc)                   # frequencies (cm⁻¹), modes, IR, thermo
>>> samples = ase_al.samplers.wigner(eq, vib, n=100, temperature=300)
"""

from ase_al import samplers
from ase_al.active_learning import ActiveLearner
from ase_al.calculators import available, methods
from ase_al.errors import MissingDependencyError, ReferenceCalculationError
from ase_al.mlatom_compat import al
from ase_al.simulations import HarmonicAnalysis, freq, optimize_geometry

__version__ = "0.1.0"

__all__ = [
    "ActiveLearner",
    "al",
    "HarmonicAnalysis",
    "MissingDependencyError",
    "ReferenceCalculationError",
    "available",
    "freq",
    "methods",
    "optimize_geometry",
    "samplers",
]
