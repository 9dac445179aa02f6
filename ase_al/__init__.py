"""ase-al: AI-enhanced computational chemistry on ASE.

>>> import ase_al
>>> calc = ase_al.methods("GFN2-xTB")            # any method or model is an ASE calculator
>>> eq = ase_al.optimize_geometry(atoms, calc)    # ase.optimize underneath
>>> vib = ase_al.freq(eq, calc)                   # frequencies (cm⁻¹), modes, IR, thermo
>>> samples = ase_al.samplers.wigner(eq, vib, n=100, temperature=300)

Names are imported on first use (``import ase_al`` stays cheap: no matplotlib, SciPy or
backends until something needs them).
"""

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "ActiveLearner": "ase_al.active_learning",
    "ALRun": "ase_al.active_learning",
    "InitialData": "ase_al.active_learning",
    "Sampling": "ase_al.active_learning",
    "Selection": "ase_al.active_learning",
    "Uncertainty": "ase_al.active_learning",
    "Equilibrium": "ase_al.active_learning",
    "al": "ase_al.mlatom_compat",
    "available": "ase_al.calculators",
    "methods": "ase_al.calculators",
    "HarmonicAnalysis": "ase_al.simulations",
    "freq": "ase_al.simulations",
    "optimize_geometry": "ase_al.simulations",
    "find_transition_state": "ase_al.reactions",
    "conformers": "ase_al.conformers",
    "MissingDependencyError": "ase_al.errors",
    "NotTrainedError": "ase_al.errors",
    "ReferenceCalculationError": "ase_al.errors",
    "SCFNotConvergedError": "ase_al.errors",
}
_SUBMODULES = {
    "calculators",
    "dynamics",
    "executors",
    "io",
    "labelling",
    "reactions",
    "samplers",
    "simulations",
    "spectra",
}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"ase_al.{name}")
    else:
        raise AttributeError(f"module 'ase_al' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
