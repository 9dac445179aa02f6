"""MLatom's training set of one AL iteration as labelled ASE structures (eV, eV/Å).

Runs in MLatom's own virtual environment and writes an extended-XYZ file, for
al_vs_mlatom.py's ``--cross-fit``:

    python _mlatom_labels.py ITERATION_DIR OUT.extxyz

ITERATION_DIR is one of ``ml.al``'s ``iterations/N`` folders; its ``training_db.json`` holds
every structure the iteration's models were trained on (energies in Hartree, energy gradients
in Hartree/Å, labelled by MLatom's bundled xtb program).
"""

import sys
from pathlib import Path

import mlatom as ml
import numpy as np
from _mlatom_data import HARTREE
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

iteration, out = Path(sys.argv[1]), sys.argv[2]
db = ml.data.molecular_database.load(str(iteration / "training_db.json"), format="json")
frames = []
for mol in db:
    atoms = Atoms(numbers=mol.atomic_numbers, positions=mol.xyz_coordinates)
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=float(mol.energy) * HARTREE,
        forces=-np.asarray(mol.get_energy_gradients()) * HARTREE,
    )
    frames.append(atoms)
write(out, frames, format="extxyz")
print(len(frames))
