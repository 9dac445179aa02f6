"""Composite (AIQM-like) calculators and Δ-learning from GFN2-xTB (+ D4) to HF/6-31G*."""

import numpy as np
import pytest
from ase.build import molecule
from conftest import numerical_forces

import ase_al
from ase_al.calculators import KREG, Composite, methods
from ase_al.labelling import SerialExecutor, label

TARGET = "HF/6-31G*"  # a Hartree-Fock target keeps the labels cheap


@pytest.fixture(scope="module")
def water_data():
    """Water at 1000 K (Wigner), labelled with the target: 40 to train, 15 to test."""
    target = methods(TARGET)
    eq = ase_al.optimize_geometry(molecule("H2O"), target, fmax=1e-3)
    vib = ase_al.freq(eq, target)
    samples = ase_al.samplers.wigner(eq, vib, 55, temperature=1000, seed=7)
    result = label(samples, TARGET, executor=SerialExecutor(), progress=False)
    images = result.labelled
    assert len(images) == 55
    return eq, images[:40], images[40:]


@pytest.fixture(scope="module")
def composite(water_data):
    _, train, _ = water_data
    return Composite(
        baseline="GFN2-xTB", dispersion="B3LYP", correction="KREG", n_corrections=3, seed=1
    ).train(train, forces=True, progress=False)


def test_energy_and_forces_are_the_sum_of_the_parts(composite, water_data):
    _, _, test = water_data
    atoms = test[0].copy()
    atoms.calc = composite
    parts = composite.parts(atoms)
    expected_e = parts["baseline"][0] + parts["dispersion"][0]
    expected_e += np.mean([e for e, _ in parts["corrections"]])
    expected_f = parts["baseline"][1] + parts["dispersion"][1]
    expected_f = expected_f + np.mean([f for _, f in parts["corrections"]], axis=0)
    assert atoms.get_potential_energy() == pytest.approx(expected_e, abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), expected_f, atol=1e-10)
    np.testing.assert_allclose(
        atoms.get_forces(), numerical_forces(atoms, composite, delta=1e-3), atol=5e-4
    )
    spread = np.std([e for e, _ in parts["corrections"]])
    assert composite.get_property("energy_uncertainty", atoms) == pytest.approx(spread)


def test_delta_learning_beats_the_baseline(composite, water_data):
    _, _, test = water_data
    energies = np.array([a.get_potential_energy() for a in test])
    forces = np.array([a.get_forces() for a in test])
    predicted = composite.predict(test)
    baseline_e, baseline_f = composite._fixed_parts(test)

    def relative_rmse(e):  # GFN2-xTB energies have their own zero: compare relative energies
        d = (e - energies) - np.mean(e - energies)
        return np.sqrt(np.mean(d**2))

    # GFN2-xTB differs from the target for distorted water by ~0.1 eV in relative energies and
    # ~0.5 eV/Å in forces; a smooth 3-atom difference learned from 40 structures with forces
    # must be several times closer (measured: more than 10x).
    assert relative_rmse(predicted["energy"]) < 0.2 * relative_rmse(baseline_e)
    f_error = np.sqrt(np.mean((predicted["forces"] - forces) ** 2))
    assert f_error < 0.2 * np.sqrt(np.mean((baseline_f - forces) ** 2))
    # and the absolute energy too: the constant offset between the methods is learned
    assert np.sqrt(np.mean((predicted["energy"] - energies) ** 2)) < 0.02


def test_uncertainty_grows_for_distorted_structures(composite, water_data):
    eq, _, test = water_data
    typical = composite.predict(test, forces=False)["energy_uncertainty"]
    distorted = eq.copy()
    distorted.set_distance(0, 1, 1.5, fix=0)  # O-H stretched from 0.97 to 1.5 Å
    far = composite.predict([distorted], forces=False)["energy_uncertainty"][0]
    assert far > 5 * np.median(typical)


def test_save_load_round_trip_and_name(composite, water_data, tmp_path):
    _, _, test = water_data
    composite.save(tmp_path / "water_delta")
    loaded = methods("AIQM-like", model_dir=tmp_path / "water_delta")
    assert isinstance(loaded, Composite) and len(loaded.corrections) == 3
    for ours, theirs in zip(composite.corrections, loaded.corrections, strict=True):
        np.testing.assert_array_equal(ours.predict(test)["forces"], theirs.predict(test)["forces"])
    a, b = composite.predict(test), loaded.predict(test)
    # the corrections are bit-identical and the recomputed GFN2-xTB baseline starts every SCF
    # from the same guess, so only floating-point summation order can differ
    np.testing.assert_allclose(a["energy"], b["energy"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(a["forces"], b["forces"], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(a["energy_uncertainty"], b["energy_uncertainty"])


def test_original_aiqm_names_and_bad_input(tmp_path):
    # AIQM1 needs ODM2*, which no pip-installable program has; the message says what instead
    with pytest.raises(ValueError, match="ODM2.*methods\\('AIQM2'\\).*Composite"):
        methods("AIQM1")
    with pytest.raises(ValueError, match="model_dir"):
        methods("AIQM-like")
    with pytest.raises(FileNotFoundError, match="composite.json"):
        Composite.load(tmp_path)
    with pytest.raises(RuntimeError, match="train"):
        Composite(correction="KREG").predict([molecule("H2O")])
    unnamed = Composite(baseline=methods("GFN2-xTB"), corrections=[KREG()], correction="KREG")
    with pytest.raises(ValueError, match="by name"):
        unnamed.save(tmp_path / "x")


def test_active_learning_of_the_correction(tmp_path):
    from ase_al import ActiveLearner, InitialData, Sampling, Selection, Uncertainty

    learner = ActiveLearner(
        molecule("H2"),
        "HF/6-31G",
        model="Composite",
        model_kwargs={"baseline": "GFN2-xTB", "correction": "KREG", "n_corrections": 1},
        uncertainty=Uncertainty(kind="committee", committee_size=2, threshold=0.05),
        workdir=tmp_path,
        initial_data=InitialData(batch=20, max_points=20),
        # every MD step evaluates each member's GFN2-xTB baseline: a few short trajectories
        sampling=Sampling(n_trajectories=4, options={"max_time_fs": 10.0}),
        selection=Selection(max_iterations=1),
        progress=False,
    )
    committee = learner.run()
    assert all(isinstance(m, Composite) for m in committee.members)
    assert (tmp_path / "iteration_1" / "member_0" / "composite.json").exists()
    labelled = learner.labelled()
    energies = np.array([a.get_potential_energy() for a in labelled])
    predicted = committee.predict(labelled, forces=False)["energy"]
    assert np.sqrt(np.mean((predicted - energies) ** 2)) < 0.2 * energies.std()
