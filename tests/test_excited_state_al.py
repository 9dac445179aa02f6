"""Excited-state active learning: multistate labels, per-state uncertainty, the surface-hopping
sampler and its hop-probability criterion, and the ActiveLearner with a MultiState model.

The reference is TriatomicAvoidedCrossing, a two-state model molecule whose exact energies and
forces cost nothing, so that the loop runs in CI time."""

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.db import connect
from conftest import numerical_forces

import ase_al
from ase_al import ActiveLearner, InitialData, Sampling, Selection, Uncertainty
from ase_al.calculators import MultiState, MultiStateCommittee
from ase_al.calculators.multistate import label_multistate
from ase_al.dynamics import SurfaceHopping, TriatomicAvoidedCrossing
from ase_al.samplers import surface_hopping, wigner
from ase_al.simulations import equilibrium_and_modes


class ExactStates:
    """Test double of a trained multistate model (the ``MultiState.predict`` interface) that
    returns the exact states of a TriatomicAvoidedCrossing with the given parameters."""

    n_states = 2

    def __init__(self, **parameters):
        self.parameters = parameters

    def predict(self, images, forces=True):
        energies, state_forces = [], []
        for atoms in images:
            labelled = label_multistate(atoms, TriatomicAvoidedCrossing(**self.parameters))
            energies.append(labelled.calc.results["state_energies"])
            state_forces.append(labelled.calc.results["state_forces"])
        result = {"state_energies": np.array(energies)}
        if forces:
            result["state_forces"] = np.array(state_forces)
        return result


@pytest.fixture(scope="module")
def conditions(tmp_path_factory):
    """Ground-state Wigner samples (300 K) of the model molecule."""
    workdir = tmp_path_factory.mktemp("triatomic")
    eq, vibrations = equilibrium_and_modes(molecule("H2O"), TriatomicAvoidedCrossing(), workdir)
    return wigner(eq, vibrations, 12, 300.0, seed=3)


def test_model_forces_are_the_gradient_of_each_state():
    atoms = molecule("H2O")
    atoms.rattle(0.05, seed=1)
    for state in (0, 1):
        calc = TriatomicAvoidedCrossing(current_state=state)
        atoms.calc = calc
        np.testing.assert_allclose(atoms.get_forces(), numerical_forces(atoms, calc), atol=1e-4)
    energies = calc.get_property("state_energies", atoms)
    assert energies[1] - energies[0] >= 2 * calc.parameters.c  # the gap never closes below 2c


def test_committee_gives_every_members_hopping_probability(conditions):
    """Identical members: every LZBL attempt's member probabilities equal the hop's own.
    A member with a wider avoided crossing (c = 0.3 eV instead of 0.1) disagrees."""
    for aux, agree in ((ExactStates(), True), (ExactStates(c=0.3), False)):
        attempts = []
        for start in conditions[:6]:
            atoms = start.copy()
            atoms.calc = MultiStateCommittee.physics_informed(ExactStates(), aux)
            dyn = SurfaceHopping(atoms, 0.25 * units.fs, initial_state=1, seed=0)
            dyn.run(160)
            attempts += dyn.hops
        assert attempts, "no hop attempts: the test conditions do not reach the crossing"
        for hop in attempts:
            main, other = hop["member_probabilities"]
            assert main == pytest.approx(hop["probability"], abs=1e-12)
            if agree:
                assert other == pytest.approx(main, abs=1e-12)
        if not agree:
            assert (
                max(
                    abs(h["member_probabilities"][0] - h["member_probabilities"][1])
                    for h in attempts
                )
                > 0.1
            )


def test_sampler_stops_where_hop_probabilities_disagree(conditions, tmp_path):
    """Energy thresholds out of reach: only the hop criterion can stop a trajectory, and it
    does so at a gap minimum (near the avoided crossing, far from the Franck-Condon gap)."""
    pair = MultiStateCommittee.physics_informed(ExactStates(), ExactStates(c=0.3))
    result = surface_hopping(
        pair,
        conditions,
        [10.0, 10.0],
        initial_state=1,
        max_time_fs=40.0,
        hop_threshold=0.1,
        trajectory_dir=tmp_path,
        progress=False,
    )
    assert len(result) >= 1 and result.n_certain == len(conditions) - len(result)
    reference = TriatomicAvoidedCrossing()
    fc_gap = np.diff(label_multistate(conditions[0], reference).calc.results["state_energies"])[0]
    for atoms in result:
        assert atoms.info["reason"] == "hop"
        p = atoms.info["hop_probabilities"]
        assert abs(p[0] - p[1]) > 0.1
        gap = np.diff(label_multistate(atoms, reference).calc.results["state_energies"])[0]
        assert gap < 0.5 * fc_gap
    assert len(list(tmp_path.glob("traj_*.traj"))) == len(conditions)


def test_sampler_applies_one_threshold_per_state(conditions):
    """An auxiliary model whose excited diabat is 20 meV higher: uncertain on S1 (0.02 eV)
    against an S1 threshold of 0.01 eV at once, certain against 0.05 eV."""
    pair = MultiStateCommittee.physics_informed(ExactStates(), ExactStates(T=1.02))
    kwargs = dict(initial_state=1, max_time_fs=5.0, progress=False)
    strict = surface_hopping(pair, conditions[:4], [1.0, 0.01], **kwargs)
    assert len(strict) == 4
    assert all(a.info["reason"] == "energy" and a.info["time_fs"] == 0.0 for a in strict)
    lenient = surface_hopping(pair, conditions[:4], [1.0, 0.05], **kwargs)
    assert len(lenient) == 0 and lenient.n_certain == 4


def test_multistate_labels_round_trip_through_the_database(conditions, tmp_path):
    from ase_al.labelling import SerialExecutor, label

    db = connect(tmp_path / "labelled.db")
    label(
        conditions[:3],
        TriatomicAvoidedCrossing(),
        SerialExecutor(),
        db,
        {"iteration": 0},
        progress=False,
        n_states=2,
    )
    rows = list(db.select())
    assert len(rows) == 3
    for row in rows:  # in the order the calculations finished
        atoms = next(a for a in conditions[:3] if np.allclose(a.positions, row.positions))
        exact = label_multistate(atoms, TriatomicAvoidedCrossing()).calc.results
        np.testing.assert_allclose(row.data["state_energies"], exact["state_energies"])
        np.testing.assert_allclose(row.data["state_forces"], exact["state_forces"])
        assert row.energy == pytest.approx(exact["state_energies"][0])


def _es_learner(workdir, n_trajectories, max_iterations, **changes):
    return ActiveLearner(
        molecule("H2O"),
        TriatomicAvoidedCrossing(),
        model=MultiState(model="KREG", n_states=2),
        workdir=workdir,
        initial_data=InitialData(max_points=100),
        sampling=Sampling(
            n_trajectories=n_trajectories, options={"max_time_fs": 30.0, "initial_state": 1}
        ),
        uncertainty=Uncertainty(threshold=[0.1, 0.1]),
        selection=Selection(max_iterations=max_iterations),
        seed=1,
        progress=False,
        **changes,
    )


@pytest.fixture(scope="module")
def es_run(tmp_path_factory):
    """Fifteen iterations: the labelled region moves out along the trajectories by about one
    stop per iteration, so the improvement takes iterations, not labels (4 iterations of 60
    trajectories, 278 labels, do not improve on the first model; 15 of 20, 366 labels, do)."""
    learner = _es_learner(tmp_path_factory.mktemp("esal"), 20, 15)
    return learner, learner.run()


@pytest.fixture(scope="module")
def es_run_short(tmp_path_factory):
    learner = _es_learner(tmp_path_factory.mktemp("esal_short"), 10, 2)
    return learner, learner.run()


@pytest.mark.slow  # about 80 s: fifteen iterations
def test_excited_state_learning_improves_the_dynamics_surfaces(es_run, conditions):
    """The final multistate model predicts both states along reference surface-hopping
    trajectories (which leave the ground-state Wigner region the initial data cover) better
    than the first iteration's model, and fewer ML trajectories meet uncertain structures."""
    learner, pair = es_run
    iterations = learner._state()["iterations"]
    assert len(iterations) >= 2
    first = MultiState.load(learner.workdir / "iteration_1" / "main")
    snapshots = []
    for start in conditions[:6]:
        atoms = start.copy()
        atoms.calc = TriatomicAvoidedCrossing()
        dyn = SurfaceHopping(atoms, 0.25 * units.fs, initial_state=1, seed=0)
        for _ in range(6):
            dyn.run(20)
            snapshots.append(atoms.copy())
    exact = np.array(
        [
            label_multistate(a, TriatomicAvoidedCrossing()).calc.results["state_energies"]
            for a in snapshots
        ]
    )

    def errors(model):  # |error| of both states, per trajectory and snapshot (eV)
        predicted = model.predict(snapshots, forces=False)["state_energies"]
        return np.abs(predicted - exact).reshape(6, 6, 2)

    first_errors, final_errors = errors(first), errors(pair.members[0])
    # Typical error: the median over snapshots and states (measured 1.08 eV -> 0.016 eV). Not
    # the RMSE: one of the six reference trajectories runs up the S1 wall to 10 eV above the
    # minimum within 5 fs, where no model has data (RMSE there 18 eV -> 1.7 eV)
    assert np.median(final_errors) < 0.1 * np.median(first_errors)
    assert np.median(final_errors) < 0.05
    # and trajectory by trajectory: better on at least five of the six (measured: all six)
    per_trajectory = [np.sqrt(np.mean(e**2, axis=(1, 2))) for e in (first_errors, final_errors)]
    assert np.sum(per_trajectory[1] < 0.5 * per_trajectory[0]) >= 5


def test_excited_state_run_files_and_resume(es_run_short):
    learner, pair = es_run_short
    rows = list(connect(learner.workdir / "labelled.db").select())
    assert all(row.data["state_energies"].shape == (2,) for row in rows)
    assert all(row.data["state_forces"].shape == (2, 3, 3) for row in rows)
    sampled = [row for row in rows if row.iteration > 0]
    assert sampled
    k = len(learner._state()["iterations"])
    assert (learner.workdir / f"iteration_{k}" / "main" / "multistate.json").exists()
    # overconfidence checks per state: the model's |error| of each state on its checks
    run = ase_al.ALRun(learner.workdir)
    for entry in run.history:
        checked = run.labelled(iteration=entry["iteration"], source="check")
        assert entry["n_checks"] == len(checked) >= 5
        assert len(entry["check_rmse"]) == len(entry["spearman"]) == 2
        data = run.calibration(entry["iteration"])
        model = run.model(entry["iteration"])
        exact = np.array([a.calc.results["state_energies"][:2] for a in checked])
        predicted = model.predict(checked, forces=False)["state_energies"]
        np.testing.assert_allclose(data["error"][data["certain"]], np.abs(predicted - exact))
        assert np.all(data["uncertainty"][data["certain"]] <= 0.1)
    again = _es_learner(learner.workdir, 10, 2).run()  # a finished run: loaded, not redone
    probe = [row.toatoms() for row in rows[:5]]
    np.testing.assert_allclose(
        again.predict(probe)["state_energies"], pair.predict(probe)["state_energies"], atol=1e-10
    )
    assert len(list(connect(learner.workdir / "labelled.db").select())) == len(rows)


def test_bad_multistate_setups(tmp_path):
    with pytest.raises(ValueError, match="surface_hopping"):
        ActiveLearner(
            molecule("H2O"),
            TriatomicAvoidedCrossing(),
            model=MultiState(model="KREG", n_states=2),
            sampler="batch_md",
        )
    with pytest.raises(ValueError, match="physics-informed"):
        ActiveLearner(
            molecule("H2O"),
            TriatomicAvoidedCrossing(),
            model=MultiState(model="KREG", n_states=2),
            uq="committee",
        )
    for option in ("relax_starting_points", "frequency_tolerance", "barrier_top_tolerance"):
        with pytest.raises(ValueError, match=f"Sampling.{option} .* multistate model has several"):
            ActiveLearner(
                molecule("H2O"),
                TriatomicAvoidedCrossing(),
                model=MultiState(model="KREG", n_states=2),
                sampling=Sampling(**{option: True if option.startswith("relax") else 0.05}),
            )
    with pytest.raises(TypeError, match="multistate committee"):
        surface_hopping(object(), [molecule("H2O")], 0.1)
