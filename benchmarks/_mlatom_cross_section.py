"""Peer side of cross_section_vs_mlatom.py: MLatom 3.25.5's uvvis.nea on given ΔE/f.

python _mlatom_cross_section.py IN.npz OUT.npz   (IN: excitation_energies eV, oscillator_strengths,
wavelengths_nm, delta; OUT: cross_section Å², energies eV)
"""

import sys

import mlatom as ml
import numpy as np

HARTREE = 27.211386245988
data = np.load(sys.argv[1])
db = ml.data.molecular_database()
for de, f in zip(data["excitation_energies"], data["oscillator_strengths"], strict=True):
    mol = ml.data.molecule.from_numpy(np.zeros((1, 3)), np.array([1]))
    mol.excitation_energies = de / HARTREE
    mol.oscillator_strengths = f
    db.append(mol)
spectrum = ml.spectra.uvvis.nea(
    molecular_database=db,
    wavelengths_nm=data["wavelengths_nm"],
    broadening_width=float(data["delta"]),
)
np.savez(
    sys.argv[2],
    cross_section=np.asarray(spectrum.cross_section),
    energies=np.asarray(spectrum.energies_eV),
)
