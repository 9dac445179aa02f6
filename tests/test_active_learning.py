import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.db import connect
from ase.io import read

import ase_al
from ase_al import ActiveLearner, InitialData, Sampling, Selection, Uncertainty
from ase_al.active_learning.initial_data import NOISE_FLOOR, stop_reason
from ase_al.calculators import KREG, Committee
from ase_al.labelling import SerialExecutor, label

FAST = {"n_trajectories": 30, "max_time_fs": 100.0}


@pytest.fixture(scope="module")
def h2_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("al_h2")
    # H2 is learnt to tens of µeV: the initial data stop at the first batch (0.1 kcal/mol
    # reached) and the automatic threshold is raised to 0.1 kcal/mol
    learner = ActiveLearner(
        molecule("H2"),
        "GFN2-xTB",
        workdir=workdir,
        sampler_kwargs=FAST,
        max_iterations=40,
        seed=1,
        progress=False,
    )
    return learner, learner.run()


def test_h2_run_converges_to_the_reference_frequency(h2_run):
    learner, pair = h2_run
    state = learner._state()
    assert state["converged"]
    reference = ase_al.methods("GFN2-xTB")
    eq = read(learner.workdir / "equilibrium.traj")
    omega_ref = ase_al.freq(eq, reference).frequencies[0]
    main = pair.members[0]
    omega_ml = ase_al.freq(ase_al.optimize_geometry(eq, main, fmax=1e-4), main).frequencies[0]
    assert omega_ml == pytest.approx(omega_ref, rel=0.01)
    # both KREG models measure their RE descriptor from the reference's optimised geometry
    for model in pair.members:
        np.testing.assert_array_equal(model.equilibrium.positions, eq.positions)
    # each iteration reports its main model's held-out (k-fold over structures) energy error
    for it in state["iterations"]:
        main_k = KREG.load(learner.workdir / f"iteration_{it['iteration']}" / "main.npz")
        assert it["validation_rmse"] == main_k.validation_rmse
        assert main_k.validation_force_rmse > 0


def test_initial_data_stop_at_the_target_in_the_noise_or_at_a_small_gain():
    # a learning curve still falling as N^-1/2 with little scatter: keep adding batches
    n = np.array([50, 100, 150, 200, 250])
    steep = [[k, 0.05 * (k / 50) ** -0.5] for k in n]
    assert stop_reason(steep[:4], 200, 50, 1000, None) is None
    # the same curve with a gain below 10 % per batch at five points: stop
    assert "less than 10 %" in stop_reason(steep, 250, 50, 1000, None)
    # below the target (default 0.1 kcal/mol) after one batch: stop
    assert NOISE_FLOOR == pytest.approx(0.1 / 23.0605, rel=1e-4)
    assert "below 0.00434 eV" in stop_reason([[50, 0.003]], 50, 50, 1000, None)
    assert stop_reason([[50, 0.003]], 50, 50, 1000, 0.001) is None
    # a flat curve scattered by ±30 %: the fitted gain is within the scatter
    noisy = [[k, 0.02 * f] for k, f in zip(n[:4], (1.0, 1.3, 0.75, 1.2), strict=True)]
    assert "scatter" in stop_reason(noisy, 200, 50, 1000, None)
    assert "max_points" in stop_reason([[50, 1.0]], 1000, 50, 1000, None)
    # ethanol/GFN2-xTB/KREG (measured): the curve steepens, a power law fits it badly (20 %
    # scatter) and promises 14 %, but the last batch brought 40 %: not noise, go on
    ethanol = [[50, 0.6097], [100, 0.3469], [150, 0.2557], [200, 0.2020], [250, 0.1413]]
    assert stop_reason(ethanol + [[300, 0.0845]], 300, 50, 1000, None) is None


def test_threshold_is_median_plus_3_mad_on_held_out_validation_structures(h2_run):
    """The automatic threshold: m+3MAD of |E_main - E_aux| on a validation tenth of the data,
    from models that did not see it."""
    learner, _ = h2_run
    state = learner._state()
    folder = learner.workdir / "iteration_1" / "threshold_models"
    pair = Committee.physics_informed(KREG.load(folder / "main.npz"), KREG.load(folder / "aux.npz"))
    initial = learner.labelled(iteration=0)
    held_uids = set(state["threshold_validation_uids"])
    held = [a for a in initial if a.info["key_value_pairs"]["uid"] in held_uids]
    seen = [a for a in initial if a.info["key_value_pairs"]["uid"] not in held_uids]
    assert len(held) == round(0.1 * len(initial)) and len(held) + len(seen) == len(initial)
    u_held = pair.predict(held, forces=False)["energy_uncertainty"]
    median = np.median(u_held)
    expected = median + 3 * np.median(np.abs(u_held - median))
    assert state["uq_threshold_measured"] == pytest.approx(expected, rel=1e-10)
    # H2's models agree to a fraction of a meV: the threshold is raised to 0.1 kcal/mol
    assert expected < NOISE_FLOOR
    assert state["uq_threshold"] == pytest.approx(0.1 * units.kcal / units.mol, rel=1e-12)
    # both models were trained on exactly the other nine tenths
    for model in pair.members:
        x_train = model._model["x_train"]
        assert len(x_train) == len(seen)
        x_seen = model._descriptors(np.array([a.positions for a in seen]))
        x_held = model._descriptors(np.array([a.positions for a in held]))
        np.testing.assert_allclose(np.sort(x_train, axis=0), np.sort(x_seen, axis=0), atol=1e-12)
        gaps = np.abs(x_held[:, None, :] - x_train[None, :, :]).max(axis=2).min(axis=1)
        assert gaps.min() > 1e-9


def test_outputs_are_ase_data(h2_run):
    learner, _ = h2_run
    db = connect(learner.workdir / "labelled.db")
    rows = list(db.select())
    assert len(rows) == len(learner.labelled()) > 50
    assert {row.source for row in rows} == {"initial wigner", "sampler", "check"}
    assert all(np.isfinite(row.energy) and row.forces.shape == (2, 3) for row in rows)
    uids = [row.uid for row in rows]
    assert len(set(uids)) == len(uids)
    out = subprocess.run(
        [sys.executable, "-m", "ase", "db", str(learner.workdir / "labelled.db"), "-c", "++"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "initial wigner" in out.stdout
    trajectories = list(learner.workdir.glob("iteration_*/trajectories/*.traj"))
    assert trajectories and all(len(read(t, ":")) >= 1 for t in trajectories)
    for name in ("learning_curve.png", "progress.png", "al.log"):
        assert (learner.workdir / name).stat().st_size > 0


def test_training_data_grow_by_appending(h2_run):
    """Each iteration's training list is the previous one with that iteration's labels
    (its checks, then its selection) appended: the networks' validation split is drawn per
    index and a warm start takes the structures past the index it had fitted as the new ones.
    (Sorted by uid alone, every iteration's checks went in front of the initial data.)"""
    learner, _ = h2_run
    state = learner._state()
    labelled = learner.labelled()
    iterations = [a.info["key_value_pairs"]["iteration"] for a in labelled]
    assert iterations == sorted(iterations)
    uids = [a.info["key_value_pairs"]["uid"] for a in labelled]
    checked = [it for it in state["iterations"] if it["n_checks"]]
    assert len(checked) >= 2 and uids[0].startswith("init")
    for it in state["iterations"][1:]:
        k = it["iteration"]
        # the fit of iteration k saw exactly the labels of the iterations before it, in front
        assert it["n_train"] == sum(i < k for i in iterations)
    for k in {i for i in iterations if i}:
        mine = [u for u, i in zip(uids, iterations, strict=True) if i == k]
        assert mine == sorted(mine, key=lambda u: (not u.startswith("check"), u))


def test_rerun_of_a_finished_run_does_nothing_new(h2_run):
    learner, _ = h2_run
    before = len(learner.labelled())
    again = ActiveLearner(
        molecule("H2"),
        "GFN2-xTB",
        workdir=learner.workdir,
        sampler_kwargs=FAST,
        max_iterations=40,
        progress=False,
    )
    state_before = learner._state()
    folders = sorted(p.name for p in learner.workdir.glob("iteration_*"))
    # a converged run: running it again loads its final models and labels nothing
    again.run()
    assert len(again.labelled()) == before
    assert again._state()["iterations"] == state_before["iterations"]
    assert again._state()["learning_curve"] == state_before["learning_curve"]
    assert sorted(p.name for p in learner.workdir.glob("iteration_*")) == folders


def _one_iteration_h2(workdir, **kwargs):
    """An H2 run with GFN2-xTB from 20 initial points, stopped after one iteration."""
    options = dict(init_batch=20, max_init_points=20, max_iterations=1, progress=False)
    return ActiveLearner(molecule("H2"), "GFN2-xTB", workdir=workdir, **options, **kwargs)


def test_labels_record_how_they_were_sampled(tmp_path):
    threshold = 2e-4  # eV: most H2 trajectories of a 20-point model cross it
    learner = _one_iteration_h2(tmp_path, sampler_kwargs=FAST, uq_threshold=threshold)
    pair = learner.run()  # the models that sampled iteration 1
    rows = list(connect(tmp_path / "labelled.db").select(source="sampler"))
    assert len(rows) >= 5
    for row in rows:
        # the structure at which trajectory `trajectory` stopped, `time_fs` into it: its
        # uncertainty |E_main - E_aux| is over the threshold and is what the models predict
        assert 0 <= row.trajectory < FAST["n_trajectories"] and row.sampling_batch == 1
        assert 0.0 <= row.time_fs <= FAST["max_time_fs"]
        assert row.uncertainty > threshold
        predicted = pair.predict([row.toatoms()], forces=False)["energy_uncertainty"][0]
        assert predicted == pytest.approx(row.uncertainty, rel=1e-6)


class FlakyReference(ase_al.calculators.XTB):
    """GFN2-xTB that fails for stretched bonds, like an SCF that does not converge."""

    def calculate(self, atoms=None, properties=None, system_changes=None):
        if atoms.get_distance(0, 1) > 0.80:
            raise ase_al.ReferenceCalculationError("SCF did not converge", atoms)
        super().calculate(atoms, properties, system_changes or ["positions"])


def test_failing_reference_is_counted_not_fatal(tmp_path):
    learner = ActiveLearner(
        molecule("H2"),
        FlakyReference(),
        workdir=tmp_path,
        initial_data=InitialData(batch=40, max_points=80),
        sampling=Sampling(n_trajectories=30, options={"max_time_fs": 100.0}),
        selection=Selection(max_iterations=2),
        executor=SerialExecutor(),
        progress=False,
    )
    learner.run()
    state = learner._state()
    assert state["failed"] > 0
    assert all(a.get_distance(0, 1) <= 0.80 for a in learner.labelled())


class BrokenForLabels(ase_al.calculators.XTB):
    """Works for the optimisation and frequencies, fails on every structure to label."""

    def calculate(self, atoms=None, properties=None, system_changes=None):
        if "uid" in atoms.info:
            raise ase_al.ReferenceCalculationError("SCF did not converge", atoms)
        super().calculate(atoms, properties, system_changes or ["positions"])


def test_reference_failing_on_a_whole_initial_batch_stops_the_run(tmp_path):
    learner = ActiveLearner(
        molecule("H2"),
        BrokenForLabels(),
        workdir=tmp_path,
        init_batch=10,
        executor=SerialExecutor(),
        progress=False,
    )
    with pytest.raises(ase_al.ReferenceCalculationError, match="all 10 structures.*SCF"):
        learner.run()


def test_user_sampler_and_user_model(tmp_path):
    calls = []

    def my_sampler(model, initial_conditions, uq_threshold, **kwargs):
        calls.append(len(initial_conditions))
        u = model.predict(initial_conditions, forces=False)["energy_uncertainty"]
        return [a for a, x in zip(initial_conditions, u, strict=True) if x > uq_threshold]

    class MyKREG(KREG):  # a user's own model: any calculator with train()
        trained = 0

        def train(self, images, forces=False, **kwargs):
            MyKREG.trained += 1
            return super().train(images, forces=forces, **kwargs)

    learner = ActiveLearner(
        molecule("H2"),
        "GFN2-xTB",
        model=MyKREG,
        workdir=tmp_path,
        initial_data=InitialData(batch=30, max_points=60),
        sampling=Sampling(sampler=my_sampler, n_trajectories=20),
        selection=Selection(max_iterations=2),
        progress=False,
    )
    pair = learner.run()
    assert calls and calls[0] == 20 and MyKREG.trained >= 2
    assert isinstance(pair.members[0], MyKREG)


def _three_per_batch_h2(tmp_path, batches: list, **kwargs):
    """One H2 iteration whose sampler calls the first three initial conditions of each batch
    of 8 uncertain (new_points = 10); ``batches`` collects (trajectory_dir, structures)."""

    def three_per_batch(model, initial_conditions, uq_threshold, trajectory_dir=None, **kw):
        batches.append((trajectory_dir, [atoms.copy() for atoms in initial_conditions[:3]]))
        return [atoms.copy() for atoms in initial_conditions[:3]]

    return _one_iteration_h2(
        tmp_path,
        sampler=three_per_batch,
        sampler_kwargs={"n_trajectories": 8},
        new_points=10,
        min_new_points=2,
        uq_threshold=1.0,  # the sampler decides what is uncertain
        **kwargs,
    )


@pytest.mark.parametrize(
    "fill, max_batches, expected", [(False, 20, 3), (True, 20, 10), (True, 2, 6)]
)
def test_fill_new_points_samples_on_until_new_points(tmp_path, fill, max_batches, expected):
    # one batch gives 3 structures; filling to new_points = 10 takes four batches (12, 10 kept)
    sampled = []
    learner = _three_per_batch_h2(
        tmp_path, sampled, fill_new_points=fill, max_sampling_batches=max_batches
    )
    learner.run()
    calls = [directory for directory, _ in sampled]
    batches = {False: 1, True: min(4, max_batches)}[fill]
    assert len(calls) == batches and len(set(calls)) == batches  # each batch its own folder
    summary = json.loads((tmp_path / "iteration_1" / "sampling.json").read_text())
    assert summary["sampling_batches"] == batches and summary["n_uncertain"] == 3
    labelled = learner.labelled(iteration=1)
    assert len(labelled) == expected
    found_in = {atoms.info["key_value_pairs"]["sampling_batch"] for atoms in labelled}
    assert found_in <= set(range(1, batches + 1)) and (len(found_in) > 1) == fill
    # fresh initial conditions per batch: no structure labelled twice
    positions = np.array([a.positions for a in labelled])
    gaps = np.linalg.norm(positions[:, None] - positions[None], axis=(2, 3))
    assert np.all(gaps[~np.eye(len(labelled), dtype=bool)] > 1e-6)


def test_mlatom_style_function(tmp_path):
    pair = ase_al.al(
        molecule("H2"),
        reference_method="GFN2-xTB",
        ml_model="KREG",
        working_directory=str(tmp_path),
        initial_points_refinement="one-shot",
        initdata_sampler_kwargs={"number_of_initial_conditions": 30},
        max_iterations=1,
        sampler_kwargs={
            "number_of_trajectories": 10,
            "maximum_propagation_time": 50,
            "initcond_sampler": "wigner",
        },
        progress=False,
    )
    assert (tmp_path / "iteration_1" / "main.npz").exists()
    assert pair.predict([molecule("H2")])["energy"].shape == (1,)


SCRIPT = """
import faulthandler
import sys
faulthandler.dump_traceback_later(240, exit=True)  # a hang shows its stack instead of blocking
from ase.build import molecule
from ase_al import ActiveLearner, InitialData, Sampling, Selection, Uncertainty
from ase_al import InitialData, Sampling, Selection, Uncertainty
ActiveLearner(molecule("H2"), "GFN2-xTB", workdir=sys.argv[1],
              initial_data=InitialData(batch=40, max_points=120, rmse=1e-9),
              sampling=Sampling(n_trajectories=10, options={"max_time_fs": 50.0}),
              uncertainty=Uncertainty(threshold=0.002),
              selection=Selection(max_iterations=2), progress=False).run()
"""


def test_killed_run_resumes_without_losing_or_repeating_labels(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    workdir = tmp_path / "al"
    process = subprocess.Popen([sys.executable, str(script), str(workdir)], start_new_session=True)
    db_path = workdir / "labelled.db"
    deadline = time.time() + 300
    count = 0
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        if db_path.exists():
            try:
                count = connect(db_path).count()
            except Exception:
                continue
            if count >= 60:  # in the middle of the second initial batch
                break
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = {row.uid for row in connect(db_path).select()}
    assert len(before) >= 60
    # as if the kill had also interrupted the writing of the next queue
    (workdir / "init" / "batch_7.traj.partial").write_bytes(b"half a trajectory")
    subprocess.run([sys.executable, str(script), str(workdir)], check=True, timeout=600)
    rows = list(connect(db_path).select())
    uids = [row.uid for row in rows]
    assert len(uids) == len(set(uids)), "a structure was labelled twice"
    assert before <= set(uids), "a label from before the kill was lost"
    # and the batch drawn after the resume is new, not the first batch drawn again
    initial = [row.positions.round(8).tobytes() for row in rows if row.iteration == 0]
    assert len(initial) == len(set(initial)), "a structure was drawn twice"
    # and the resumed run went on to the end: converged, or stopped at max_iterations (2)
    run = ase_al.ALRun(workdir)
    assert run.state["initial_data_done"] and len(run.labelled(iteration=0)) == 120
    assert run.converged or len(run.history) == 2


def test_database_appears_initialised_so_a_concurrent_reader_cannot_break_the_run(tmp_path):
    """ASE creates the tables of a new SQLite file on first access after checking that they
    are missing; a reader opening the file in between (here a thread polling it, as the resume
    test does, or a user's ``ase db``) made the run's first access fail with "table systems
    already exists" (18 of 40 trials with a plain ``connect``). ``open_database`` must never
    fail that way, and must never replace a database that exists."""

    from ase_al.files import open_database

    def poll(path, stop):
        while not stop.is_set():
            if path.exists():
                try:
                    connect(path, use_lock_file=False).count()
                except Exception:
                    pass

    for trial in range(30):
        path = tmp_path / f"labelled{trial}.db"
        stop = threading.Event()
        reader = threading.Thread(target=poll, args=(path, stop))
        reader.start()
        try:
            time.sleep(0.01)
            open_database(path).write(molecule("H2"), uid=f"t{trial}")
        finally:
            stop.set()
            reader.join()
        assert [row.uid for row in connect(path).select()] == [f"t{trial}"]
    # an existing database is opened, not replaced; no temporary files are left
    open_database(tmp_path / "labelled0.db").write(molecule("H2O"), uid="second")
    assert connect(tmp_path / "labelled0.db").count() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"labelled{trial}.db" for trial in range(30)
    )


def test_dask_executor_gives_the_same_labels():
    distributed = pytest.importorskip("distributed")
    structures = _h2_structures(n=6, seed=2)
    local = label(structures, "GFN2-xTB", progress=False).labelled
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with distributed.Client(cluster) as client:
            remote = label(
                structures, "GFN2-xTB", executor=client.get_executor(), progress=False
            ).labelled
    by_uid = {a.info["uid"]: a.get_potential_energy() for a in local}
    assert sorted(by_uid) == sorted(a.info["uid"] for a in remote)
    for atoms in remote:
        assert atoms.get_potential_energy() == pytest.approx(by_uid[atoms.info["uid"]], abs=1e-9)


def test_a_used_calculator_object_labels_in_worker_processes():
    """A reference given as an object that has already computed (it holds library handles)
    is sent to the pool's workers; one that cannot be pickled is refused with a clear error."""
    structures = _h2_structures(n=4, seed=3)
    calc = ase_al.methods("GFN2-xTB")
    direct = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calc
        direct.append(atoms.get_potential_energy())
    from ase_al.executors import default_executor  # the pool itself, not the tests' serial one

    result = label(structures, calc, executor=default_executor(), progress=False)
    assert not result.failed
    energies = {a.info["uid"]: a.get_potential_energy() for a in result.labelled}
    np.testing.assert_allclose([energies[f"s{i}"] for i in range(4)], direct, rtol=0, atol=1e-10)
    calc.lock = threading.Lock()  # not picklable, by cloudpickle either
    with pytest.raises(TypeError, match="cannot be sent to worker processes.*by name"):
        label(structures, calc, progress=False)


def _h2_structures(n, seed):
    """``n`` 300 K Wigner samples of H2 (GFN2-xTB modes) with uids s0, s1, ..."""
    calc = ase_al.methods("GFN2-xTB")
    eq = ase_al.optimize_geometry(molecule("H2"), calc)
    structures = ase_al.samplers.wigner(eq, ase_al.freq(eq, calc), n=n, temperature=300, seed=seed)
    for i, atoms in enumerate(structures):
        atoms.info["uid"] = f"s{i}"
    return structures


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        ActiveLearner(molecule("H2"), "B3LIP/6-31G*", workdir=tmp_path)
    with pytest.raises(ValueError, match="unknown model type"):
        ActiveLearner(molecule("H2"), "GFN2-xTB", model="KRR", workdir=tmp_path)
    with pytest.raises(ValueError, match="unknown sampler"):
        ActiveLearner(molecule("H2"), "GFN2-xTB", sampler="metadynamics", workdir=tmp_path)
    bad = molecule("H2")
    bad.positions[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ActiveLearner(bad, "GFN2-xTB", workdir=tmp_path)
    with pytest.raises(ValueError, match="reference_method"):
        ase_al.al(molecule("H2"))


def test_batch_md_matches_one_ase_dynamics_per_trajectory(h2_run):
    from ase_al.samplers import batch_md, md

    learner, pair = h2_run
    eq = read(learner.workdir / "equilibrium.traj")
    from ase_al.simulations import HarmonicAnalysis

    vib = HarmonicAnalysis(eq, np.load(learner.workdir / "hessian.npy"))
    conditions = ase_al.samplers.wigner(eq, vib, n=12, temperature=1500, seed=9)
    threshold = learner._state()["uq_threshold"]
    lockstep = batch_md(pair, conditions, threshold, max_time_fs=60, progress=False)
    looped = md(pair, conditions, threshold, max_time_fs=60, progress=False)
    assert lockstep.n_certain == looped.n_certain and len(lockstep) == len(looped)
    first = {a.info["trajectory"]: a for a in lockstep}
    for atoms in looped:
        twin = first[atoms.info["trajectory"]]
        assert twin.info["time_fs"] == atoms.info["time_fs"]
        # same integrator; batched kernel sums differ in round-off, which grows over the run
        np.testing.assert_allclose(twin.positions, atoms.positions, atol=1e-5)


def test_committee_uncertainty_mode(tmp_path):
    learner = ActiveLearner(
        molecule("H2"),
        "GFN2-xTB",
        workdir=tmp_path,
        uncertainty=Uncertainty(kind="committee", committee_size=3),
        initial_data=InitialData(batch=40, max_points=80),
        sampling=Sampling(n_trajectories=30, options={"max_time_fs": 100.0}),
        selection=Selection(max_iterations=2),
        progress=False,
    )
    committee = learner.run()
    assert len(committee.members) == 3 and committee.spread == "std"
    assert len(list((tmp_path / "iteration_1").glob("member_*.npz"))) == 3
    # no extra energies-only model: the reported error is the first member's held-out one
    first = KREG.load(tmp_path / "iteration_1" / "member_0.npz")
    reported = json.loads((tmp_path / "iteration_1" / "validation_rmse.json").read_text())
    assert reported == first.validation_rmse and first.validation_force_rmse > 0
    assert not (tmp_path / "iteration_1" / "aux.npz").exists()
    eq = read(tmp_path / "equilibrium.traj")
    stretched = eq.copy()
    stretched.set_distance(0, 1, 1.3)  # far outside 300 K sampling
    u = committee.predict([eq, stretched], forces=False)["energy_uncertainty"]
    assert u[1] > 10 * u[0]
    with pytest.raises(
        ValueError,
        match="must be 'physics-informed', 'committee', 'variance', 'distance' or a function",
    ):
        ActiveLearner(molecule("H2"), "GFN2-xTB", workdir=tmp_path, uq="dropout")


def test_user_committee_recipe(tmp_path):
    """A Committee the user builds (here MLatom's pair by hand: a KREG on energies + forces and
    one on energies only) is the model: each iteration trains a copy, the recipe stays
    untrained, the result carries its weights and spread, and a re-run loads the saved
    members."""
    from ase_al.calculators import Committee

    recipe = Committee.physics_informed(KREG(), KREG())
    settings = dict(
        workdir=tmp_path,
        model=recipe,
        sampler_kwargs=FAST,
        seed=1,
        max_iterations=4,
        progress=False,
    )
    pair = ActiveLearner(molecule("H2"), "GFN2-xTB", **settings).run()
    assert not any(m.is_trained for m in recipe.members)
    assert pair is not recipe and all(m.is_trained for m in pair.members)
    assert pair.spread == "range" and list(pair.weights) == [1.0, 0.0]
    assert pair.train_forces == [True, False]
    assert (tmp_path / "iteration_1" / "committee" / "member_0.npz").exists()
    # the main member learned forces: its frequency is the reference's within 1 %
    eq = read(tmp_path / "equilibrium.traj")
    omega_ref = ase_al.freq(eq, ase_al.methods("GFN2-xTB")).frequencies[0]
    main = pair.members[0]
    omega_ml = ase_al.freq(ase_al.optimize_geometry(eq, main, fmax=1e-4), main).frequencies[0]
    assert omega_ml == pytest.approx(omega_ref, rel=0.01)
    stretched = eq.copy()
    stretched.set_distance(0, 1, 1.2)
    u = pair.predict([eq, stretched], forces=False)["energy_uncertainty"]
    # the spread is the recipe's: |E_main - E_aux| of the two members
    e = [m.predict([eq, stretched], forces=False)["energy"] for m in pair.members]
    np.testing.assert_allclose(u, np.abs(e[0] - e[1]), rtol=1e-12)
    assert u[0] < ase_al.ALRun(tmp_path).history[-1]["threshold"]
    again = ActiveLearner(molecule("H2"), "GFN2-xTB", **settings).run()
    np.testing.assert_array_equal(
        again.predict([stretched])["energy"], pair.predict([stretched])["energy"]
    )


def test_user_vibrations_and_initial_database(h2_run, tmp_path):
    learner, _ = h2_run
    from ase_al.simulations import HarmonicAnalysis

    eq = read(learner.workdir / "equilibrium.traj")
    vib = HarmonicAnalysis(eq, np.load(learner.workdir / "hessian.npy"))
    user = ActiveLearner(
        eq,
        "GFN2-xTB",
        workdir=tmp_path / "user",
        vibrations=vib,
        initial_data=str(learner.workdir / "labelled.db"),
        sampler_kwargs=FAST,
        max_iterations=1,
        progress=False,
    )
    user.run()
    imported = user.labelled(source="user")
    assert len(imported) == len(learner.labelled())
    np.testing.assert_array_equal(
        read(tmp_path / "user" / "equilibrium.traj").positions, eq.positions
    )
    assert not user._state()["learning_curve"]  # no Wigner initial data was made
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    with pytest.raises(ValueError, match="cannot read initial data"):
        ActiveLearner(
            eq,
            "GFN2-xTB",
            workdir=tmp_path / "bad",
            vibrations=vib,
            initial_data=str(broken),
            progress=False,
        ).run()


@pytest.mark.slow  # ~50 s; ANI and MACE pass the model contract in the default suite
def test_neural_network_model_in_the_loop(tmp_path):
    pytest.importorskip("torchani")
    settings = {"max_epochs": 150, "learning_rate": 3e-3, "force_weight": 0.1, "threads": 2}
    kwargs = dict(
        model="ANI",
        model_kwargs=settings,
        workdir=tmp_path,
        init_batch=40,
        max_init_points=80,
        sampler_kwargs=FAST,
        max_iterations=2,
        seed=3,
        progress=False,
    )
    pair = ActiveLearner(molecule("H2"), "GFN2-xTB", **kwargs).run()
    assert [type(m).__name__ for m in pair.members] == ["ANI", "ANI"]
    assert (tmp_path / "iteration_1" / "main.pt").exists()
    assert (tmp_path / "iteration_1" / "aux.pt").exists()
    # the main network learned the reference on the labelled data (H2 at 300 K spans ~0.1 eV)
    labelled = ActiveLearner(molecule("H2"), "GFN2-xTB", **kwargs).labelled()
    reference = np.array([a.get_potential_energy() for a in labelled])
    predicted = pair.members[0].predict(labelled, forces=False)["energy"]
    assert np.sqrt(np.mean((predicted - reference) ** 2)) < 0.3 * reference.std()
    # a re-run loads the saved networks instead of training again
    again = ActiveLearner(molecule("H2"), "GFN2-xTB", **kwargs).run()
    np.testing.assert_array_equal(
        again.members[0].predict(labelled, forces=False)["energy"], predicted
    )


def test_farthest_point_selection_is_greedy_max_min_distance():
    """Each pick maximises the distance to its nearest neighbour among the reference points
    and the earlier picks (checked by brute force on random descriptors)."""
    from ase_al.active_learning import farthest_points

    rng = np.random.default_rng(3)
    candidates, reference = rng.normal(size=(40, 6)), rng.normal(size=(15, 6))
    chosen = farthest_points(candidates, reference, 12)
    assert len(set(chosen.tolist())) == 12
    taken = list(reference)
    for k in chosen:
        gaps = [min(np.linalg.norm(c - t) for t in taken) for c in candidates]
        for j in chosen[: list(chosen).index(k)]:
            gaps[j] = -1.0
        assert gaps[k] == pytest.approx(max(gaps))
        taken.append(candidates[k])
    # without reference points the first pick is arbitrary, the second the farthest from it
    chosen = farthest_points(candidates, np.empty((0, 6)), 2)
    gaps = np.linalg.norm(candidates - candidates[chosen[0]], axis=1)
    assert gaps[chosen[1]] == pytest.approx(gaps.max())
    assert sorted(farthest_points(candidates, reference, 50).tolist()) == list(range(40))


def test_selection_options_are_checked():
    h2 = molecule("H2")
    with pytest.raises(ValueError, match="selection method"):
        ActiveLearner(h2, "GFN2-xTB", selection="best")
    with pytest.raises(ValueError, match="pool_factor"):
        Selection(pool_factor=0.5, fill=True)
    # without fill there is no pool to choose from: the options must not be inert
    with pytest.raises(ValueError, match="fill=True"):
        ActiveLearner(h2, "GFN2-xTB", selection=Selection(method="farthest"))
    with pytest.raises(ValueError, match="fill=True"):
        Selection(pool_factor=2.0)
    # the first release's flat keywords map onto the same checks
    with pytest.raises(ValueError, match="fill=True"):
        ActiveLearner(h2, "GFN2-xTB", selection="farthest")


def test_farthest_selection_labels_the_most_novel_of_a_larger_pool(tmp_path):
    from ase_al.active_learning import farthest_points
    from ase_al.descriptors import re_descriptor

    sampled = []
    # sample on to 20 uncertain structures: seven batches, 21 pooled
    learner = _three_per_batch_h2(
        tmp_path, sampled, fill_new_points=True, selection="farthest", pool_factor=2.0
    )
    learner.run()
    pooled = [atoms for _, structures in sampled for atoms in structures]
    assert len(pooled) == 21
    labelled = learner.labelled(iteration=1)
    before = [a for a in learner.labelled() if a.info["key_value_pairs"].get("iteration") != 1]
    equilibrium = read(tmp_path / "equilibrium.traj")
    r0 = equilibrium.get_all_distances()[np.triu_indices(2, 1)]
    expected = farthest_points(
        re_descriptor(np.array([a.positions for a in pooled]), r0),
        re_descriptor(np.array([a.positions for a in before]), r0),
        10,
    )
    want = np.sort(
        [np.linalg.norm(pooled[i].positions[0] - pooled[i].positions[1]) for i in expected]
    )
    got = np.sort([a.get_distance(0, 1) for a in labelled])
    assert len(labelled) == 10 and np.allclose(got, want)


def test_alrun_reads_the_run_back(h2_run):
    learner, pair = h2_run
    run = ase_al.ALRun(learner.workdir)
    state = json.loads((learner.workdir / "state.json").read_text())
    assert run.history == state["iterations"] and run.converged == state["converged"]
    assert run.settings["sampler_kwargs"]["n_trajectories"] == FAST["n_trajectories"]
    assert len(run.labelled()) == connect(learner.workdir / "labelled.db").count()
    assert [n for n, _ in run.learning_curve] == [n for n, _ in state["learning_curve"]]
    # the final model, loaded from its files, predicts what the run returned
    probe = run.labelled()[:5]
    np.testing.assert_allclose(
        run.model().predict(probe)["energy"], pair.predict(probe)["energy"], rtol=0, atol=1e-12
    )
    first = run.model(1)
    assert isinstance(first, Committee) and first.spread == "range"
    with pytest.raises(FileNotFoundError, match="iteration 99"):
        run.model(99)


def tight_h2_learner(workdir, max_iterations, n_trajectories, max_time_fs):
    """H2 on GFN2-xTB from 20 initial points with a threshold so tight that every
    iteration finds work."""
    return ActiveLearner(
        molecule("H2"),
        "GFN2-xTB",
        workdir=workdir,
        initial_data=InitialData(batch=20, max_points=20),
        sampling=Sampling(n_trajectories=n_trajectories, options={"max_time_fs": max_time_fs}),
        uncertainty=Uncertainty(threshold=1e-4),
        selection=Selection(max_iterations=max_iterations, min_new_points=1),
        progress=False,
    )


def test_irun_yields_every_iteration_and_observers_are_called(tmp_path):
    calls = []
    learner = tight_h2_learner(tmp_path, 3, 10, 50.0)
    learner.attach(lambda: calls.append(len(ase_al.ALRun(tmp_path).history)), interval=2)
    summaries = list(learner.irun())
    assert [s["iteration"] for s in summaries] == list(range(1, len(summaries) + 1))
    assert all(isinstance(s["model"], Committee) for s in summaries)
    history = ase_al.ALRun(tmp_path).history
    assert [s["n_train"] for s in summaries] == [it["n_train"] for it in history]
    # each iteration trained on the labels of the ones before it
    assert all(b["n_train"] > a["n_train"] for a, b in zip(summaries, summaries[1:], strict=False))
    assert calls == [k for k in range(1, len(summaries) + 1) if k % 2 == 0]
    with pytest.raises(TypeError, match="callable"):
        learner.attach("not a function")


def test_a_resumed_run_draws_its_own_iterations_numbers(tmp_path):
    """Each iteration draws its random numbers (here its trajectories' initial conditions)
    from a stream of its own, seeded by (seed, iteration): a run stopped after iteration 1
    and resumed by a new learner, as after a kill, starts iteration 2's trajectories where
    an uninterrupted run does, not where iteration 1 started them again."""

    def learner(workdir, iterations):
        return tight_h2_learner(workdir, iterations, 4, 10.0)

    def starts(workdir, k):
        folder = workdir / f"iteration_{k}" / "trajectories"
        return np.array([read(folder / f"traj_{i}.traj", 0).positions for i in range(4)])

    learner(tmp_path / "whole", 2).run()
    learner(tmp_path / "resumed", 1).run()
    learner(tmp_path / "resumed", 2).run()
    assert len(ase_al.ALRun(tmp_path / "resumed").history) == 2
    np.testing.assert_allclose(starts(tmp_path / "resumed", 1), starts(tmp_path / "whole", 1))
    np.testing.assert_allclose(starts(tmp_path / "resumed", 2), starts(tmp_path / "whole", 2))
    moved = np.abs(starts(tmp_path / "resumed", 2) - starts(tmp_path / "resumed", 1))
    assert moved.max() > 1e-3  # H2's Wigner width at 300 K is 0.07 Å


def test_an_al_runs_models_drive_input_file_tasks(h2_run, tmp_path, monkeypatch):
    """What an AL run wrote is a method for the CLI's tasks: the final iteration's main KREG
    file (MLatom's MLmodelIn=) and the iteration folder itself (its uncertainty-aware model)."""
    from ase_al.cli import main

    learner, _ = h2_run
    k = len(ase_al.ALRun(learner.workdir).history)
    folder = learner.workdir / f"iteration_{k}"
    eq = read(learner.workdir / "equilibrium.traj")
    monkeypatch.chdir(tmp_path)
    molecule_text = "xyzfile='2\n\nH 0 0 0\nH 0 0 0.80\n'"
    for model in (folder / "main.npz", folder):
        (tmp_path / "opt.inp").write_text(f"geomopt MLmodelIn={model}\n{molecule_text}\n")
        assert main(["opt.inp"]) == 0
        optimized = read(tmp_path / "optimized.xyz")
        assert optimized.get_distance(0, 1) == pytest.approx(eq.get_distance(0, 1), abs=2e-3)
    text = f"freq optimize=true MLmodelIn={folder / 'main.npz'}\n{molecule_text}\n"
    (tmp_path / "freq.inp").write_text(text)
    assert main(["freq.inp"]) == 0
    reference = ase_al.freq(eq, ase_al.methods("GFN2-xTB")).frequencies[0]
    assert np.loadtxt(tmp_path / "freq.dat", usecols=0).max() == pytest.approx(reference, rel=0.01)
