"""Errors of a saved MLatom KREG model (KREG_API ``.npz``) on labelled test structures.

Runs in MLatom's own virtual environment (with MKL's libraries on LD_LIBRARY_PATH, as
al_vs_mlatom.py arranges) and prints one JSON line, one entry per test file:

    python _mlatom_errors.py MODEL.npz TEST.extxyz [TEST2.extxyz ...]
    -> {"TEST.extxyz": {"energy_rmse": eV, "energy_offset": eV, "force_rmse": eV/Å}, ...}

Energies are compared up to a constant (``energy_offset``, the mean error, is removed from the
RMSE): MLatom's GFN2-xTB is its bundled xtb program, the test labels come from tblite.
"""

import json
import sys
from pathlib import Path

import mlatom as ml
import numpy as np
from _mlatom_data import HARTREE
from ase.io import read

model = ml.models.kreg(model_file=sys.argv[1], ml_program="KREG_API")
results = {}
for path in sys.argv[2:]:
    test = read(path, ":")
    db = ml.data.molecular_database()
    for atoms in test:
        db.append(ml.data.molecule.from_numpy(atoms.positions, atoms.numbers))
    model.predict(
        molecular_database=db,
        property_to_predict="energy",
        xyz_derivative_property_to_predict="energy_gradients",
    )
    error = np.array([m.energy for m in db]) * HARTREE - [a.get_potential_energy() for a in test]
    forces = -np.array([m.get_energy_gradients() for m in db]) * HARTREE
    results[Path(path).name] = {
        "energy_rmse": float(np.sqrt(np.mean((error - error.mean()) ** 2))),
        "energy_offset": float(error.mean()),
        "force_rmse": float(np.sqrt(np.mean((forces - [a.get_forces() for a in test]) ** 2))),
    }
print(json.dumps(results))
