"""Peer side of kreg_vs_mlatom.py: MLatom 3.25.5's KREG on the same split. Prints one JSON line.

Runs in MLatom's own virtual environment (see the shared peer notes): python _mlatom_kreg.py N DATA
"""

import json
import os
import sys
import tempfile
import time

import mlatom as ml
import numpy as np
from _mlatom_data import database, prediction_errors
from ase.io import read

n_train, path = int(sys.argv[1]), sys.argv[2]
frames = read(path, ":")[1:]
order = np.random.default_rng(0).permutation(len(frames))
train = database([frames[i] for i in order[:n_train]])
test = database([frames[i] for i in order[2000:3000]])
os.chdir(tempfile.mkdtemp())
start = time.perf_counter()
model = ml.models.kreg(model_file=f"kreg_{n_train}", ml_program="MLatomF")
sub, val = train.split(
    number_of_splits=2, fraction_of_points_in_splits=[0.8, 0.2], sampling="random"
)
model.optimize_hyperparameters(
    subtraining_molecular_database=sub,
    validation_molecular_database=val,
    optimization_algorithm="grid",
    hyperparameters=["lambda", "sigma"],
    training_kwargs={"property_to_learn": "energy", "prior": "mean"},
    prediction_kwargs={"property_to_predict": "estimated_energy"},
)
model.train(molecular_database=train, property_to_learn="energy", prior="mean")
trained = time.perf_counter()
energy_error, force_error = prediction_errors(model, test)
predicted = time.perf_counter()
print(
    json.dumps(
        {
            "train_s": trained - start,
            "predict_s": predicted - trained,
            "energy_rmse": float(np.sqrt(np.mean(energy_error**2))),
            "force_rmse": float(np.sqrt(np.mean(force_error**2))),
            "sigma": float(model.hyperparameters["sigma"].value),
            "lambda": float(model.hyperparameters["lambda"].value),
        }
    )
)
