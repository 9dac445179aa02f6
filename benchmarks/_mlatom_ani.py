"""Peer side of nn_potentials.py: MLatom 3.25.5's ANI on the same split. Prints one JSON line.

Runs in MLatom's own virtual environment with torch and torchani 2.2 added
(``pip install torch==2.13.0 'torchani==2.2.*' 'setuptools<81'``):
python _mlatom_ani.py N DATA MAX_EPOCHS
"""

import json
import os
import sys
import tempfile
import time

import mlatom as ml
import numpy as np
import torch
from _mlatom_data import database, prediction_errors
from ase.io import read

# MLatom 3.25.5 asks for torch < 2.8 and calls ReduceLROnPlateau.is_better, which torch 2.8
# renamed _is_better; the CPU wheel here is 2.13, so the harness restores the old name.
_plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
if not hasattr(_plateau, "is_better"):
    _plateau.is_better = _plateau._is_better
# MLatom reloads its best checkpoint (schedulers included) at the end, so the epochs run are
# counted here: each of its two schedulers (AdamW, SGD) steps once per epoch.
_steps = {}
_step = _plateau.step


def _counting_step(self, *args, **kwargs):
    _steps[id(self)] = _steps.get(id(self), 0) + 1
    return _step(self, *args, **kwargs)


_plateau.step = _counting_step

KCAL = 23.060548  # kcal/mol per eV


n_train, path, epochs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
frames = read(path, "1:")
order = np.random.default_rng(0).permutation(len(frames))
train = database([frames[i] for i in order[:n_train]])
test = database([frames[i] for i in order[2000:3000]])
os.chdir(tempfile.mkdtemp())
start = time.perf_counter()
model = ml.models.ani(model_file=f"ani_{n_train}.pt", device="cpu", verbose=0)
model.train(
    molecular_database=train,
    property_to_learn="energy",
    xyz_derivative_property_to_learn="energy_gradients",
    hyperparameters={"max_epochs": epochs},
)
trained = time.perf_counter()
energy_error, force_error = prediction_errors(model, test)
epochs_run = max(_steps.values())
print(
    json.dumps(
        {
            "train_s": trained - start,
            "epochs": int(epochs_run),
            "s_per_epoch": (trained - start) / int(epochs_run),
            "energy_rmse": float(np.sqrt(np.mean(energy_error**2))) * KCAL,
            "force_rmse": float(np.sqrt(np.mean(force_error**2))) * KCAL,
        }
    )
)
