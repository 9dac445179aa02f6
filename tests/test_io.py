"""Every result survives ASE's I/O (extxyz, traj, ase.db), and HarmonicAnalysis survives
VibrationsData's (todict/fromdict, ase.io.jsonio, write/read)."""

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.io import jsonio, read, write
from ase.vibrations import VibrationsData

import ase_al
from ase_al.calculators import KREG, Committee, Composite
from ase_al.calculators.multistate import label_multistate
from ase_al.dynamics import TriatomicAvoidedCrossing
from ase_al.io import read_row, restore, storable, write_row


def _water_images(n, seed):
    calc = ase_al.methods("GFN2-xTB")
    eq = ase_al.optimize_geometry(molecule("H2O"), calc)
    images = []
    for atoms in ase_al.samplers.wigner(eq, ase_al.freq(eq, calc), n=n, temperature=500, seed=seed):
        work = Atoms(atoms.numbers, atoms.positions)
        work.calc = calc
        e, f = work.get_potential_energy(), work.get_forces()
        work.calc = SinglePointCalculator(work, energy=e, forces=f)
        images.append(work)
    return images


def _multistate_label():
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    return label_multistate(atoms, TriatomicAvoidedCrossing())


def _committee_prediction():
    images = _water_images(12, 1)
    committee = Committee([KREG().train(images[:8]), KREG().train(images[4:12])])
    atoms = images[0].copy()
    atoms.positions[1] += 0.05
    atoms.calc = committee
    atoms.get_potential_energy()
    assert {"energy_uncertainty", "forces_uncertainty"} <= set(atoms.calc.results)
    return atoms


def _tddft_result():
    pytest.importorskip("pyscf")
    atoms = molecule("H2O")
    atoms.calc = ase_al.methods("TD-HF/STO-3G", n_states=3)
    atoms.get_forces()
    atoms.calc.get_property("state_forces", atoms)
    assert {"state_energies", "excitation_energies", "oscillator_strengths"} <= set(
        atoms.calc.results
    )
    return atoms


def _composite_result():
    images = _water_images(10, 2)
    target = ase_al.methods("GFN1-xTB")
    for atoms in images:
        work = atoms.copy()
        work.calc = target
        atoms.calc = SinglePointCalculator(
            atoms, energy=work.get_potential_energy(), forces=work.get_forces()
        )
    composite = Composite(baseline="GFN2-xTB", correction="KREG", n_corrections=2).train(images)
    atoms = images[0].copy()
    atoms.calc = composite
    atoms.get_forces()
    atoms.calc.get_property("energy_uncertainty", atoms)
    return atoms


CASES = {
    "multistate label": _multistate_label,
    "committee prediction": _committee_prediction,
    "TDDFT result": _tddft_result,
    "composite result": _composite_result,
}


def _assert_same_results(original: dict, back: dict, rtol=1e-12):
    assert set(back) == set(original), f"names: {set(original) ^ set(back)}"
    for name, value in original.items():
        assert np.shape(back[name]) == np.shape(value), name
        np.testing.assert_allclose(back[name], value, rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.parametrize("case", list(CASES))
def test_results_survive_extxyz_traj_and_ase_db(case, tmp_path):
    atoms = CASES[case]()
    original = dict(atoms.calc.results)
    # extxyz writes ASE's forces with 8 decimals (its format); traj and db are exact
    for suffix, rtol in (("extxyz", 1e-7), ("traj", 1e-12)):
        path = tmp_path / f"x.{suffix}"
        write(path, storable(atoms))
        _assert_same_results(original, restore(read(path)).calc.results, rtol)
    db = connect(tmp_path / "x.db")
    write_row(db, atoms, uid="a")
    _assert_same_results(original, read_row(db.get(uid="a")).calc.results)
    # and ase db's own columns still hold ASE's results
    assert db.get(uid="a").energy == pytest.approx(original["energy"])


def test_plain_ase_io_alone_would_lose_them(tmp_path):
    """Why the helpers exist: ASE keeps only its own result names."""
    atoms = _multistate_label()
    write(tmp_path / "x.extxyz", atoms)
    assert "state_energies" not in read(tmp_path / "x.extxyz").calc.results


def test_a_per_state_energies_result_is_refused():
    """ASE reads 'energies' as per-atom energies: a per-state vector under that name would be
    misread (three states of a three-atom molecule silently), so it is an error."""
    atoms = molecule("H2O")
    atoms.calc = SinglePointCalculator(atoms, energy=0.0)
    atoms.calc.results["energies"] = np.zeros(2)
    with pytest.raises(ValueError, match="state_energies"):
        storable(atoms)


@pytest.fixture(scope="module")
def water_vibrations():
    pytest.importorskip("pyscf")
    calc = ase_al.methods("HF/STO-3G")
    eq = ase_al.optimize_geometry(molecule("H2O"), calc)
    vib = ase_al.freq(eq, calc)
    assert vib.ir_intensities is not None and vib.potential_energy is not None
    return vib


def _assert_same_analysis(a, b):
    assert type(b) is type(a)
    np.testing.assert_allclose(b.frequencies, a.frequencies, rtol=1e-9)
    np.testing.assert_allclose(np.abs(b.modes), np.abs(a.modes), atol=1e-9)
    np.testing.assert_allclose(b.ir_intensities, a.ir_intensities, rtol=1e-9)
    assert b.potential_energy == pytest.approx(a.potential_energy, rel=1e-12)


def test_harmonic_analysis_round_trips(water_vibrations, tmp_path):
    vib = water_vibrations
    _assert_same_analysis(vib, type(vib).fromdict(vib.todict()))
    # ASE's JSON decodes it as a VibrationsData; the analysis comes back from that
    decoded = jsonio.decode(jsonio.encode(vib))
    assert isinstance(decoded, VibrationsData)
    np.testing.assert_allclose(decoded.get_frequencies()[-3:].real, vib.frequencies, rtol=1e-6)
    _assert_same_analysis(vib, ase_al.HarmonicAnalysis.from_vibrations(decoded))
    vib.write(tmp_path / "vib.json")
    _assert_same_analysis(vib, ase_al.HarmonicAnalysis.read(tmp_path / "vib.json"))
    assert isinstance(VibrationsData.read(tmp_path / "vib.json"), VibrationsData)


def test_docs_show_the_result_names_the_code_uses():
    from pathlib import Path

    from ase_al.io import results_table

    readme = Path(__file__).resolve().parents[1] / "docs" / "results.md"
    assert results_table() in readme.read_text()


def test_mlatom_json_written_by_mlatom_reads_with_ase_units(tmp_path):
    """tests/data/h2_init_cond_db.json was written by MLatom 3.25.5 with its own GFN2-xTB:
    energies (Hartree) and gradients (Hartree/Å) come back as eV and forces, equal to
    ase-al's GFN2-xTB at the same geometries; as an AL folder's init_cond_db.json it is the
    learner's initial data."""
    import shutil

    from ase_al import ActiveLearner
    from ase_al.calculators import methods
    from ase_al.io import read_mlatom_json

    source = Path(__file__).parent / "data" / "h2_init_cond_db.json"
    images = read_mlatom_json(source)
    assert len(images) == 6 and images[0].info["multiplicity"] == 1
    calc = methods("GFN2-xTB")
    for atoms in images:
        probe = atoms.copy()
        probe.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(probe.get_potential_energy(), abs=1e-4)
        np.testing.assert_allclose(atoms.get_forces(), probe.get_forces(), atol=1e-3)
    # compressed (0.70 Å, below GFN2-xTB's 0.777 Å) H2 pushes its atoms apart
    assert images[0].get_forces()[0, 2] < 0 < images[0].get_forces()[1, 2]
    workdir = tmp_path / "al"
    workdir.mkdir()
    shutil.copy(source, workdir / "init_cond_db.json")
    learner = ActiveLearner(images[2], "GFN2-xTB", workdir=workdir)
    assert learner.initial_data.structures == str(workdir / "init_cond_db.json")
    # read once, when the learner is built (a bad file fails there); not read again
    assert [a.get_potential_energy() for a in learner.initial_structures] == [
        a.get_potential_energy() for a in images
    ]
    with pytest.raises(ValueError, match="not an MLatom molecular database"):
        (tmp_path / "bad.json").write_text("[1, 2")
        read_mlatom_json(tmp_path / "bad.json")


def test_label_writes_to_a_database_given_by_path(tmp_path):
    from ase_al.labelling import SerialExecutor, label

    images = [molecule("H2"), molecule("H2")]
    images[1].positions[1, 2] += 0.05
    result = label(
        images, "GFN2-xTB", executor=SerialExecutor(), db=tmp_path / "l.db", progress=False
    )
    rows = list(connect(tmp_path / "l.db").select())
    assert len(rows) == 2 and len(result.labelled) == 2
    assert sorted(r.energy for r in rows) == pytest.approx(
        sorted(a.get_potential_energy() for a in result.labelled)
    )
    with pytest.raises(TypeError, match="db must be an ase.db connection or a path"):
        label(images, "GFN2-xTB", executor=SerialExecutor(), db=42, progress=False)
