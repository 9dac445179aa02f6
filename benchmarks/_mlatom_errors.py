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
from _mlatom_data import database, prediction_errors
from ase.io import read

model = ml.models.kreg(model_file=sys.argv[1], ml_program="KREG_API")
results = {}
for path in sys.argv[2:]:
    error, force_error = prediction_errors(model, database(read(path, ":")))
    results[Path(path).name] = {
        "energy_rmse": float(np.sqrt(np.mean((error - error.mean()) ** 2))),
        "energy_offset": float(error.mean()),
        "force_rmse": float(np.sqrt(np.mean(force_error**2))),
    }
print(json.dumps(results))
