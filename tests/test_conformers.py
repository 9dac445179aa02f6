"""Conformer ensembles: RDKit embeddings optimised with GFN2-xTB, deduplicated, minima only."""

import numpy as np
import pytest
from ase.build import molecule
from ase.units import kcal, mol

pytest.importorskip("rdkit")

from ase_al.conformers import conformers  # noqa: E402


def test_butane_has_anti_and_two_gauche_conformers():
    found = conformers("CCCC", "GFN2-xTB", n_embed=8, seed=1, fmax=2e-3, progress=False)
    assert len(found) == 3
    anti, *gauche = found
    assert anti.relative_energy == 0.0
    assert abs(abs(anti.atoms.get_dihedral(0, 1, 2, 3) - 180.0)) < 5.0
    dihedrals = sorted(g.atoms.get_dihedral(0, 1, 2, 3) for g in gauche)
    assert 55 < dihedrals[0] < 80 and 280 < dihedrals[1] < 305  # gauche+ and gauche-
    # mirror images: the same energy; above anti by the gauche effect (~0.6 kcal/mol here,
    # 0.6-0.7 measured for butane)
    assert gauche[0].energy == pytest.approx(gauche[1].energy, abs=1e-4)
    assert 0.3 < gauche[0].relative_energy / (kcal / mol) < 1.2
    for conformer in found:
        assert conformer.vibrations.frequencies.min() > 50.0  # minima: 36 real modes
        assert len(conformer.vibrations.frequencies) == 36
        assert conformer.atoms.info["relative_energy"] == conformer.relative_energy


def test_structure_input_keeps_its_atom_order_and_window_filters():
    start = molecule("trans-butane")
    found = conformers(
        start,
        "GFN2-xTB",
        n_embed=8,
        seed=2,
        fmax=2e-3,
        energy_window=0.01,
        frequencies=False,
        progress=False,
    )
    assert len(found) == 1  # only anti lies within 0.01 eV (0.23 kcal/mol) of the lowest
    assert found[0].atoms.get_chemical_symbols() == start.get_chemical_symbols()
    assert found[0].vibrations is None
    with pytest.raises(ValueError, match="SMILES"):
        conformers("C1CC", "GFN2-xTB")
    with pytest.raises(TypeError, match="SMILES string, ase.Atoms"):
        conformers(42, "GFN2-xTB")
    assert np.isfinite(found[0].energy)


def test_reoptimize_reports_the_minima_and_their_rmsd():
    """A minimum moved rigidly relaxes to itself (RMSD after superposition ~0, the same
    energy); a distorted copy relaxes back to it; no structures is a one-line error."""
    from scipy.spatial.transform import Rotation

    from ase_al import methods, optimize_geometry
    from ase_al.conformers import reoptimize

    calc = methods("GFN2-xTB")
    water = optimize_geometry(molecule("H2O"), calc, fmax=1e-4)
    moved = water.copy()
    moved.positions = moved.positions @ Rotation.random(random_state=1).as_matrix().T + 3.0
    bent = water.copy()
    bent.positions[1] += (0.0, 0.1, 0.05)
    energies, rmsds = reoptimize([moved, bent], calc, fmax=1e-4)
    assert energies == pytest.approx([water.get_potential_energy()] * 2, abs=1e-6)
    assert rmsds[0] < 1e-3  # Å: superposed, not the 3 Å translation
    assert 0.02 < rmsds[1] < 0.1  # relaxed back from the 0.11 Å distortion of one H
    with pytest.raises(ValueError, match="no structures"):
        reoptimize([], calc)
