"""Peer side of batch_md.py: MLatom 3.25.5's md_parallel with its KREG. Prints one JSON line.

Runs in MLatom's own virtual environment: python _mlatom_batch_md.py DATA N_TRAJ N_STEPS
"""

import json
import os
import sys
import tempfile
import time

import mlatom as ml
import numpy as np
from ase.io import read

HARTREE = 27.211386245988
path, n_traj, n_steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
frames = read(path, ":")
order = np.random.default_rng(0).permutation(np.arange(1, 1501))


def database(indices, with_energy=True):
    db = ml.data.molecular_database()
    for i in indices:
        mol = ml.data.molecule.from_numpy(frames[i].positions, frames[i].numbers)
        if with_energy:
            mol.energy = frames[i].get_potential_energy() / HARTREE
        db.append(mol)
    return db


os.chdir(tempfile.mkdtemp())
model = ml.models.kreg(model_file="kreg_md", ml_program="MLatomF")
model.hyperparameters["sigma"].value = 3.0
model.hyperparameters["lambda"].value = 1e-8
model.train(molecular_database=database(order[:500]), property_to_learn="energy")
starts = database(order[750 : 750 + n_traj], with_energy=False)
for mol in starts:
    for atom in mol.atoms:
        atom.xyz_velocities = np.zeros(3)
start = time.perf_counter()
ml.md_parallel(
    model=model,
    molecular_database=starts,
    ensemble="NVE",
    time_step=0.5,
    maximum_propagation_time=0.5 * n_steps,
)
elapsed = time.perf_counter() - start
print(json.dumps({"trajectory_steps_per_s": n_traj * n_steps / elapsed, "seconds": elapsed}))
