from pathlib import Path

import numpy as np
import pytest
from ase.io import read

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def numerical_forces(atoms, calc, delta=1e-3):
    """-dE/dx by central differences (eV/Å)."""
    work = atoms.copy()
    work.calc = calc
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for j in range(3):
            energies = []
            for sign in (1, -1):
                pos = atoms.positions.copy()
                pos[i, j] += sign * delta
                work.positions = pos
                energies.append(work.get_potential_energy())
            forces[i, j] = -(energies[0] - energies[1]) / (2 * delta)
    return forces


@pytest.fixture(scope="session")
def ethanol_frames():
    path = SHARED_DATA / "ethanol_gfn2.extxyz"
    if not path.exists():
        pytest.skip(f"data set {path} not found (it lives in ../shared/data)")
    return read(path, ":")
