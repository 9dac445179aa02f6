"""Peer side of aiqm2_vs_mlatom.py: MLatom 3.25.5's AIQM2 on the given structures.

Runs in MLatom's own virtual environment with torch, torchani 2.2 and a ``dftd4`` program (the
shared peer notes' ``dftd4_shim.py``, named by $dftd4bin): python _mlatom_aiqm2.py FILE.extxyz
Prints one JSON line: energies (Hartree), gradients (Hartree/Å), network spread (Hartree), the
time per structure, and central differences (h = 1e-4 Å) of the energy along x for atoms 0
and 1, to check each code's analytic gradient against its own energies.
"""

import json
import os
import sys
import tempfile
import time

import mlatom as ml
from ase.io import read

frames = read(sys.argv[1], ":")
os.chdir(tempfile.mkdtemp())
model = ml.models.methods(method="AIQM2")


def molecule(symbols, positions):
    mol = ml.data.molecule()
    mol.read_from_xyz_string(
        f"{len(symbols)}\n\n"
        + "\n".join(
            f"{s} {x:.10f} {y:.10f} {z:.10f}"
            for s, (x, y, z) in zip(symbols, positions, strict=False)
        )
        + "\n"
    )
    return mol


def energy(symbols, positions):
    mol = molecule(symbols, positions)
    model.predict(molecule=mol, calculate_energy=True)
    return float(mol.energy)


rows = []
for atoms in frames:
    symbols = atoms.get_chemical_symbols()
    mol = molecule(symbols, atoms.positions)
    start = time.perf_counter()
    model.predict(molecule=mol, calculate_energy=True, calculate_energy_gradients=True)
    elapsed = time.perf_counter() - start
    fd = []
    for atom in (0, 1):
        shifted = []
        for sign in (1, -1):
            positions = atoms.positions.copy()
            positions[atom, 0] += sign * 1e-4
            shifted.append(energy(symbols, positions))
        fd.append((shifted[0] - shifted[1]) / 2e-4)
    rows.append(
        {
            "fd_gradient_x01": fd,
            "energy": float(mol.energy),
            "gradient": mol.get_energy_gradients().tolist(),
            "std": float(mol.aiqm2_nn.energy_standard_deviation),
            "baseline": float(mol.gfn2xtbstar.energy),
            "seconds": elapsed,
        }
    )
print(json.dumps(rows))
