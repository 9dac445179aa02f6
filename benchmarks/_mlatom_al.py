"""Peer side of al_vs_mlatom.py: MLatom 3.25.5's ``ml.al`` (physics-informed, KREG).

Runs in MLatom's own virtual environment and prints one JSON line (re-running it in the same
WORKDIR resumes a killed run; the wall time counts all attempts):

    python _mlatom_al.py START.xyz WORKDIR N_TRAJ MAX_TIME_FS STEP_FS MAX_ITER
                         [UQ_THRESHOLD_HARTREE|none] [INIT_POINTS]

Without a threshold (or with ``none``) MLatom sets its own (median + 3 MAD on its validation set).
INIT_POINTS > 0: that many initial Wigner points in one shot (MLatom's
``initial_points_refinement="one-shot"``); 0 or absent: its learning-curve rule (5-fold CV).

The reference is MLatom's GFN2-xTB (its bundled xtb program); the KREG models are MLatom's
default AL backend (KREG_API, which needs MKL's libraries on LD_LIBRARY_PATH: the benchmark
script arranges that). The benchmark evaluates the final main model (the last
``iterations/N/mlmodel.npz``) on its test sets with _mlatom_errors.py.
"""

import glob
import json
import os
import sys

import mlatom as ml
import numpy as np
from _stopwatch import stopwatch

start_xyz, workdir = sys.argv[1:3]
n_traj, max_time, step, max_iter = (
    int(sys.argv[3]),
    float(sys.argv[4]),
    float(sys.argv[5]),
    int(sys.argv[6]),
)
threshold = None if len(sys.argv) < 8 or sys.argv[7] == "none" else float(sys.argv[7])
init_points = int(sys.argv[8]) if len(sys.argv) > 8 else 0
molecule = ml.data.molecule.from_xyz_file(start_xyz)
os.makedirs(workdir, exist_ok=True)
os.chdir(workdir)

reference = ml.methods(method="GFN2-xTB")
# ml.al resumes a killed run from its al_info.json; the wall time of all attempts adds up in
# wall.json (seconds held with SIGSTOP, recorded in wall.json.paused, are not counted)
elapsed = stopwatch("wall.json")
# tight minimum (its default 0.02 eV/Å leaves soft modes imaginary, which its Wigner sampler
# cannot handle) and finite-difference frequencies through ASE (no Hessian path for its xtb)
equilibrium = ml.optimize_geometry(
    model=reference,
    initial_molecule=molecule,
    program="ASE",
    convergence_criterion_for_forces=1e-4,
    maximum_number_of_steps=1000,
).optimized_molecule
ml.freq(model=reference, molecule=equilibrium, program="ASE")
# its ASE path returns all 3N modes, rigid-body ones included (at ±1e-6 cm⁻¹), while its Wigner
# sampler expects the 3N - 6 vibrations that its PySCF and Gaussian paths return: keep those
frequencies = np.asarray(equilibrium.frequencies)
vibrations = np.abs(frequencies) >= 1.0
equilibrium.frequencies = frequencies[vibrations]
for atom in equilibrium.atoms:
    atom.normal_modes = np.asarray(atom.normal_modes)[vibrations]
run = ml.al(
    molecule=equilibrium,
    reference_method=reference,
    ml_model="KREG",
    sampler="batch_md",
    sampler_kwargs={
        "initcond_sampler": "wigner",
        "initcond_sampler_kwargs": {
            "molecule": equilibrium,
            "number_of_initial_conditions": n_traj,
            "initial_temperature": 300,
        },
        "maximum_propagation_time": max_time,
        "time_step": step,
        **({} if threshold is None else {"uq_threshold": threshold}),
    },
    **(
        {
            "initial_points_refinement": "one-shot",
            "initdata_sampler": "wigner",
            "initdata_sampler_kwargs": {
                "molecule": equilibrium,
                "number_of_initial_conditions": init_points,
                "initial_temperature": 300,
            },
        }
        if init_points
        else {}
    ),
    new_points=n_traj,
    min_new_points=5,
    max_iterations=max_iter,
)
wall = elapsed()

labels = sum(
    len(ml.data.molecular_database.load(path, format="json"))
    for path in glob.glob("iterations/*/labeled_db.json")
)
print(
    json.dumps(
        {
            "wall_s": wall,
            "labels": labels,
            "iterations": int(run.iteration),
            "converged": bool(run.converged),
        }
    )
)
