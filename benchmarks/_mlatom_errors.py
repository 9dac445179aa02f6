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
from _mlatom_data import HARTREE, database
from ase.io import read

model = ml.models.kreg(model_file=sys.argv[1], ml_program="KREG_API")
results = {}
for path in sys.argv[2:]:
    test = database(read(path, ":"))
    model.predict(
        molecular_database=test,
        property_to_predict="estimated_energy",
        xyz_derivative_property_to_predict="estimated_energy_gradients",
    )
    error = (test.get_properties("estimated_energy") - test.get_properties("energy")) * HARTREE
    force_error = (
        test.get_xyz_vectorial_properties("estimated_energy_gradients")
        - test.get_xyz_vectorial_properties("energy_gradients")
    ) * HARTREE
    results[Path(path).name] = {
        "energy_rmse": float(np.sqrt(np.mean((error - error.mean()) ** 2))),
        "energy_offset": float(error.mean()),
        "force_rmse": float(np.sqrt(np.mean(force_error**2))),
    }
print(json.dumps(results))
