"""ML-NEA UV/vis absorption spectrum of water: TDDFT labels on a few hundred geometries,
KREG models for the rest of a large Wigner ensemble.

    python examples/mlnea_water.py [REFERENCE] [ENSEMBLE_SIZE]
    (defaults: "TD-B3LYP/6-31G*", 20000; "CIS/STO-3G" 2000 runs in under a minute)

Writes mlnea_water/cross-section/cross-section_{ml-nea,qc-nea,spc}.dat (DE/eV, λ/nm, σ/Å²,
MLatom's format) and plot.png.
"""

import sys

import numpy as np
from ase.build import molecule

from ase_al.spectra import MLNEA

reference = sys.argv[1] if len(sys.argv) > 1 else "TD-B3LYP/6-31G*"
size = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
result = MLNEA(
    molecule("H2O"), reference=reference, n_excitations=3, ensemble_size=size, workdir="mlnea_water"
).run()
peak = result["energies"][np.argmax(result["cross_section"])]
print(f"{result['n_qc']} {reference} calculations, converged: {result['converged']}")
print(
    f"ML-NEA band maximum at {peak:.2f} eV ({1239.84 / peak:.0f} nm), "
    f"σ_max = {result['cross_section'].max():.3g} Å²"
)
