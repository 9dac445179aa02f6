"""The learner's kinds of uncertainty, its overconfidence checks and the target-error rule."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.morse import MorsePotential
from ase.calculators.singlepoint import SinglePointCalculator

import ase_al
from ase_al import ActiveLearner, InitialData, Sampling, Selection, Uncertainty
from ase_al.active_learning import checks
from ase_al.active_learning.training import Plan, train_single
from ase_al.calculators import KREG
from ase_al.calculators.uncertain import UncertainModel
from ase_al.samplers.stop import CertainFrames


def h2(r):
    return Atoms("H2", positions=[[0, 0, 0], [0, 0, r]])


def morse_labelled(distances):
    calc = MorsePotential(epsilon=4.7, r0=0.74, rho0=3.0)
    images = []
    for r in distances:
        atoms = h2(r)
        atoms.calc = calc
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        images.append(atoms)
    return images


@pytest.mark.parametrize("kind", ["variance", "distance"])
def test_uncertainty_grows_away_from_the_data_on_a_1d_problem(kind, tmp_path):
    """H2 on a Morse curve, trained on bond lengths 0.70-0.80 Å: the uncertainty is small
    inside, grows monotonically outward on both sides, and survives a save/load."""
    train = morse_labelled(np.linspace(0.70, 0.80, 11))
    plan = Plan(
        factory=lambda **kw: KREG(equilibrium=h2(0.74), **kw),
        kind=kind,
        committee_size=0,
        seed=0,
        equilibrium=h2(0.74),
    )
    model = train_single(plan, train)
    inside = model.predict([h2(0.745)], forces=False)["energy_uncertainty"][0]
    outward = [h2(r) for r in (0.82, 0.86, 0.92, 1.0, 1.1)]
    inward = [h2(r) for r in (0.68, 0.66, 0.63, 0.60)]
    for path in (outward, inward):
        u = model.predict(path, forces=False)["energy_uncertainty"]
        assert np.all(np.diff(u) > 0), u
        assert u[0] > inside and u[-1] > 10 * inside
    far = morse_labelled([1.1])
    error = abs(model.predict(far, forces=False)["energy"][0] - far[0].get_potential_energy())
    u_far = model.predict(far, forces=False)["energy_uncertainty"][0]
    if kind == "variance":  # in eV: of the order of the model's actual error far out
        assert 0.01 * error < u_far < 100 * error
    else:  # scaled so that the leave-one-out nearest distances read as the held-out error:
        # the error of interpolation, so far out it reads low (a ranking, less an eV value)
        x = model.estimator.descriptors
        loo = [np.delete(x, i, axis=0) for i in range(len(x))]
        d = [np.min(np.linalg.norm(rest - x[i], axis=1)) for i, rest in enumerate(loo)]
        typical = model.estimator.scale * np.sqrt(np.mean(np.square(d)))
        assert typical == pytest.approx(model.validation_rmse, rel=1e-10)
        assert u_far < error
    model.save(tmp_path / "m")
    again = UncertainModel.load(tmp_path / "m")
    np.testing.assert_allclose(
        again.predict(outward)["energy_uncertainty"], model.predict(outward)["energy_uncertainty"]
    )
    atoms = h2(0.9)
    atoms.calc = again  # an ASE calculator
    assert atoms.calc.get_property("energy_uncertainty", atoms) > inside


def test_upper_rmse_bound_covers_the_true_rmse_at_its_confidence():
    # four unit errors: the 90 % bound is sqrt(4 / chi2_0.1(4)) with chi2_0.1(4) = 1.0636
    assert checks.upper_rmse(np.ones(4), 0.9) == pytest.approx(np.sqrt(4 / 1.063623), rel=1e-5)
    rng = np.random.default_rng(0)
    covered = [checks.upper_rmse(rng.normal(0, 1, 6), 0.9) >= 1.0 for _ in range(4000)]
    assert np.mean(covered) == pytest.approx(0.9, abs=0.015)


def test_check_sample_is_seeded_and_threshold_follows_the_checks():
    frames = CertainFrames(h2(0.74))
    for t in range(50):
        frames.add(h2(0.7 + 0.002 * t).positions, t % 5, t * 5.0, 0.001)
    a, b = checks.draw(frames, 6, 3, 2), checks.draw(frames, 6, 3, 2)
    assert [x.info["time_fs"] for x in a] == [x.info["time_fs"] for x in b]
    assert [x.info["time_fs"] for x in a] != [
        x.info["time_fs"] for x in checks.draw(frames, 6, 4, 2)
    ]
    assert [x.info["uid"] for x in a] == [f"check002-{i:06d}" for i in range(6)]
    assert checks.n_checks(100, 0.03, 5) == 5 and checks.n_checks(1000, 0.03, 5) == 30
    assert checks.n_checks(100, 0.0, 5) == 0
    adjust = checks.adjusted_threshold
    often = {"n_checks": 8, "over_target": 3 / 8, "meets_target": False}
    rarely = {"n_checks": 8, "over_target": 2 / 8, "meets_target": True}
    never = {"n_checks": 8, "over_target": 0.0, "meets_target": True}
    assert adjust(0.01, often, 0.005, False, 0.1) == pytest.approx(0.007)
    assert adjust(0.01, often, 0.005, True, 0.1) == pytest.approx(0.007)
    assert adjust(0.01, rarely, 0.005, False, 0.1) is None  # some over the target: kept
    assert adjust(0.01, often, None, False, 0.1) is None  # only with a target
    assert adjust(0.01, never, None, False, 0.1) is None

    # certain structures all within the target in two iterations in a row at the same
    # threshold while the run goes on: raised, to the ceiling
    def before(threshold, **changes):  # the previous iteration's history entry
        return {**never, "threshold": threshold, **changes}

    assert adjust(0.01, never, 0.005, False, 0.1, before(0.01)) == pytest.approx(0.01 / 0.7)
    assert adjust(0.09, never, 0.005, False, 0.1, before(0.09)) == pytest.approx(0.1)
    assert adjust(0.1, never, 0.005, False, 0.1, before(0.1)) is None
    assert adjust(0.01, never, 0.005, False, None, before(0.01)) == pytest.approx(0.01 / 0.7)
    # one pass is not enough: no previous iteration, a previous one that failed or had
    # some above the target, or one at another threshold (raised after it: pass again)
    assert adjust(0.01, never, 0.005, False, 0.1) is None
    assert adjust(0.01, never, 0.005, False, 0.1, before(0.01, meets_target=False)) is None
    assert adjust(0.01, never, 0.005, False, 0.1, before(0.01, over_target=0.125)) is None
    assert adjust(0.01, never, 0.005, False, 0.1, before(0.007)) is None
    assert adjust(0.01, never, 0.005, False, 0.1, before(0.01, n_checks=0)) is None
    # three passes in a row: raised once, then the new threshold must pass twice itself
    threshold, raised_at = 0.01, []
    history = []
    for k in range(1, 8):
        new = adjust(threshold, never, 0.005, False, 1.0, history[-1] if history else None)
        history.append({**never, "threshold": threshold})
        if new is not None:
            raised_at.append(k)
            threshold = new
    assert raised_at == [2, 4, 6] and threshold == pytest.approx(0.01 / 0.7**3)
    assert adjust(0.01, never, 0.005, True, 0.1, before(0.01)) is None  # converged
    assert adjust(0.01, {**never, "meets_target": False}, 0.005, False, 0.1, before(0.01)) is None
    assert adjust(0.01, {**never, "n_checks": 0}, 0.005, False, 0.1, before(0.01)) is None
    per_state = {"n_checks": 8, "over_target": [0.5, 0.0], "meets_target": False}
    assert adjust([0.1, 0.2], per_state, 0.05, False, None) == pytest.approx([0.07, 0.2])
    per_state = {"n_checks": 8, "over_target": [0.1, 0.0], "meets_target": True}
    previous = {**per_state, "threshold": [0.1, 0.2]}
    assert adjust([0.1, 0.2], per_state, 0.05, False, [1.0, 0.25], previous) == pytest.approx(
        [0.1, 0.25]
    )
    # a state that passed before but not now (or the reverse) is not raised
    mixed = {
        "n_checks": 8,
        "over_target": [0.0, 0.1],
        "meets_target": True,
        "threshold": [0.1, 0.2],
    }
    assert adjust([0.1, 0.2], per_state, 0.05, False, None, mixed) is None


def _learner(workdir, max_iterations=2, **uncertainty):
    return ActiveLearner(
        molecule("H2"),
        "GFN2-xTB",
        workdir=workdir,
        initial_data=InitialData(batch=20, max_points=20),
        sampling=Sampling(n_trajectories=20, options={"max_time_fs": 60.0}),
        selection=Selection(max_iterations=max_iterations, min_new_points=3),
        uncertainty=Uncertainty(**uncertainty),
        seed=2,
        progress=False,
    )


def test_checks_are_labelled_not_trained_on_in_their_iteration_and_round_trip(tmp_path):
    learner = _learner(tmp_path / "al", kind="distance", min_checks=4)
    learner.run()
    run = ase_al.ALRun(tmp_path / "al")
    for entry in run.history:
        k = entry["iteration"]
        checked = run.labelled(iteration=k, source="check")
        assert entry["n_checks"] == len(checked) == 4
        # the iteration's model was trained on the data before it: not on its checks
        model = run.model(k)
        trained = model.members[0]._model["x_train"]
        assert (
            len(trained)
            == entry["n_train"]
            == len(run.labelled())
            - sum(len(run.labelled(iteration=j)) for j in range(k, len(run.history) + 1))
        )
        x = model.members[0]._descriptors(np.array([a.positions for a in checked]))
        assert np.min(np.abs(x[:, None] - trained[None]).max(axis=2)) > 1e-9
        # the calibration data are the model's uncertainties and true errors, redrawable
        data = run.calibration(k)
        u, e = checks.errors(model, checked, None)
        np.testing.assert_allclose(data["uncertainty"][data["certain"]], u, rtol=1e-10)
        np.testing.assert_allclose(data["error"][data["certain"]], e, rtol=1e-10, atol=1e-12)
        assert np.all(data["uncertainty"][data["certain"]] <= entry["threshold"])
        assert entry["check_rmse"] == pytest.approx(np.sqrt(np.mean(e**2)))
    assert (tmp_path / "al" / "calibration.png").stat().st_size > 0
    assert type(learner.run()).__name__ == "UncertainModel"  # finished: loaded


def test_target_error_holds_the_run_until_the_checks_meet_it(tmp_path):
    # a target no model of 20-odd points meets: never converged, and the threshold is lowered
    strict = _learner(tmp_path / "strict", target_error=1e-7)
    strict.run()
    run = ase_al.ALRun(tmp_path / "strict")
    assert not run.converged and len(run.history) == 2
    assert all(not it["meets_target"] for it in run.history)
    assert run.history[0]["over_target"] > checks.TOO_OFTEN
    assert run.history[1]["threshold"] == pytest.approx(checks.LOWER * run.history[0]["threshold"])
    assert "threshold lowered" in (tmp_path / "strict" / "al.log").read_text()
    # a reachable target: converged at once, and the checked error bound is below it
    easy = _learner(tmp_path / "easy", target_error=0.02)
    easy.run()
    run = ase_al.ALRun(tmp_path / "easy")
    assert run.converged and run.history[-1]["meets_target"]
    assert run.history[-1]["check_rmse_upper"] <= 0.02


def _stretch(model, images):
    """An uncertainty (eV) that is the H-H bond's distance from 0.74 Å."""
    return np.array([abs(a.get_distance(0, 1) - 0.74) for a in images])


def test_a_threshold_given_on_resuming_replaces_the_runs_and_checks_raise_it(tmp_path):
    work = tmp_path / "al"
    _learner(work, 1, kind=_stretch, target_error=0.02).run()
    run = ase_al.ALRun(work)
    measured = run.state["uq_threshold_measured"]
    ceiling = max(measured, 0.02)
    assert run.history[0]["threshold"] == pytest.approx(ceiling)
    # resumed with a tighter threshold: taken at once, in place of the measured one
    _learner(work, 3, kind=_stretch, target_error=0.02, threshold=0.01).run()
    run = ase_al.ALRun(work)
    log = (work / "al.log").read_text()
    assert "0.01000 eV given on resuming" in log
    # most trajectories leave |r - 0.74 Å| < 0.01 Å: the run goes on, but the certain
    # structures checked are well within the target, so the threshold was set too tight;
    # raised after the second iteration in a row that shows it, not after the first
    for entry in run.history[1:]:
        assert entry["threshold"] == pytest.approx(0.01)
        assert entry["n_uncertain"] >= 3
        assert entry["n_checks"] > 0 and entry["meets_target"] and entry["over_target"] == 0
    assert not run.converged
    assert run.state["uq_threshold"] == pytest.approx(min(0.01 / checks.LOWER, ceiling))
    assert log.count("threshold raised from 0.01000") == 1
    assert "raised when the next iteration's do too" in log
    # resumed again with the same threshold: the run's raised one stays
    _learner(work, 3, kind=_stretch, target_error=0.02, threshold=0.01).run()
    assert ase_al.ALRun(work).state["uq_threshold"] == pytest.approx(0.01 / checks.LOWER)


def test_a_function_as_uncertainty_and_bad_kinds(tmp_path):
    def spread(model, images):  # distance of the bond from 0.74 Å, as eV
        return np.array([abs(a.get_distance(0, 1) - 0.74) for a in images])

    learner = _learner(tmp_path / "fn", kind=spread, check_fraction=0.1)
    model = learner.run()
    assert model.predict([h2(0.84)])["energy_uncertainty"][0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="give it again"):
        ase_al.ALRun(tmp_path / "fn").model()
    assert ase_al.ALRun(tmp_path / "fn").model(uncertainty=spread).estimator.function is spread
    with pytest.raises(ValueError, match="'variance', 'distance' or a function"):
        Uncertainty(kind="varience")
    with pytest.raises(
        TypeError, match=r"field of Uncertainty, give uncertainty=Uncertainty\(check"
    ):
        ActiveLearner(molecule("H2"), "GFN2-xTB", workdir=tmp_path / "y", check_fraction=0.1)
    assert not (tmp_path / "y").exists()
    with pytest.raises(ValueError, match="check_fraction > 0"):
        Uncertainty(target_error=0.01, check_fraction=0)
    with pytest.raises(ValueError, match="physics-informed pair"):
        ActiveLearner(
            molecule("H2"),
            "GFN2-xTB",
            model=ase_al.calculators.MultiState(model="KREG", n_states=2),
            uncertainty="variance",
            workdir=tmp_path / "x",
        )


@pytest.mark.parametrize("kind", ["physics-informed", "committee"])
def test_warm_start_trains_on_from_the_previous_iterations_networks(
    kind, ethanol_frames, tmp_path, caplog
):
    """With ``warm_start`` an iteration's networks are the previous iteration's, trained on:
    given no epochs they predict exactly as those did; a model that cannot continue (KREG)
    is refused when the learner is built."""
    pytest.importorskip("torchani")
    import logging

    from ase_al.active_learning.training import ModelRecipe, train_models

    images = ethanol_frames[:400:10]
    recipe = ModelRecipe(
        "ANI", {"hidden_layers": (8,), "max_epochs": 2, "threads": 1}, kind, seed=0
    )
    plan = Plan(factory=recipe.build, kind=kind, committee_size=2, seed=0, warm_start=True)
    first, _ = train_models(plan, images[:30], tmp_path / "iteration_1")
    # the saved networks, set to train for no epochs: continuing keeps their weights
    for path in (tmp_path / "iteration_1").glob("*.pt"):
        model = type(first.members[0]).load(path)
        model.training["max_epochs"] = 0
        model.save(path)
    with caplog.at_level(logging.INFO, logger="ase_al"):
        second, _ = train_models(
            plan, images, tmp_path / "iteration_2", previous=tmp_path / "iteration_1"
        )
    assert "warm start: continuing from" in caplog.text
    for a, b in zip(first.members, second.members, strict=True):
        np.testing.assert_array_equal(
            a.predict(images, forces=False)["energy"], b.predict(images, forces=False)["energy"]
        )
    cold, _ = train_models(
        Plan(factory=recipe.build, kind=kind, committee_size=2, seed=0),
        images,
        tmp_path / "cold",
        previous=tmp_path / "iteration_1",
    )
    assert not np.allclose(
        cold.members[0].predict(images, forces=False)["energy"],
        first.members[0].predict(images, forces=False)["energy"],
    )
    with pytest.raises(TypeError, match="warm_start: KREG cannot continue from its weights"):
        ActiveLearner(
            molecule("H2"), "GFN2-xTB", model="KREG", workdir=tmp_path / "k", warm_start=True
        )
    with pytest.raises(ValueError, match="warm_start continues the physics-informed pair"):
        ActiveLearner(
            molecule("H2"),
            "GFN2-xTB",
            model="ANI",
            uncertainty="variance",
            workdir=tmp_path / "v",
            warm_start=True,
        )


def test_a_single_molecule_run_validates_its_own_minimum(tmp_path):
    """One starting structure relaxed on each iteration's model: its energy change against
    the reference's (the start's energy by one reference calculation), and the latest
    iteration within a tolerance."""
    from ase.io import read

    work = tmp_path / "al"
    learner = ActiveLearner(
        molecule("H2"),
        "GFN2-xTB",
        workdir=work,
        initial_data=InitialData(batch=20, max_points=20),
        sampling=Sampling(
            n_trajectories=6, options={"max_time_fs": 20.0}, relax_starting_points=True
        ),
        selection=Selection(max_iterations=2, min_new_points=3),
        # tight: the run goes on, and the relaxation's end is labelled as uncertain or checked
        uncertainty=Uncertainty(threshold=2e-5, target_error=1e-6),
        seed=2,
        progress=False,
    )
    learner.run()
    run = ase_al.ALRun(work)
    assert len(run.history) == 2
    calc = ase_al.methods("GFN2-xTB")
    found = []
    for entry in run.history:
        path = read(work / f"iteration_{entry['iteration']}" / "relaxations" / "00.traj", ":")
        start, end = path[0].copy(), path[-1].copy()
        start.calc, end.calc = calc, calc
        expected = (path[-1].info["model_energy"] - path[0].info["model_energy"]) - (
            end.get_potential_energy() - start.get_potential_energy()
        )
        assert entry["relaxation_errors"]["0"] == pytest.approx(expected, abs=1e-6)
        found.append(abs(expected))
    # the latest iteration within the tolerance
    assert run.validated_iteration(max(found) + 1e-9) == 2
    if found[1] < found[0]:
        assert run.validated_iteration(0.5 * (found[0] + found[1])) == 2
    else:
        assert run.validated_iteration(0.5 * (found[0] + found[1])) == 1
    assert run.validated_iteration(0.999 * min(found)) is None
    log = (work / "al.log").read_text()
    assert "own stationary points against the reference" in log
    # the end of the run names the model to keep when it is not the last (default
    # tolerance: the target error)
    kept = run.validated_iteration()
    assert kept == (1 if found[0] <= 1e-6 < found[1] else 2 if found[1] <= 1e-6 else None)
    assert ("no iteration's model relaxed" in log) == (kept is None)
    assert ("iteration 1's held" in log) == (kept == 1)
    # structures along each iteration's path where it moved from its start, labelled
    from ase_al.active_learning.sampling import PATH_SAMPLES, PATH_SPACING
    from ase_al.samplers.relax import along_path

    for entry in run.history:
        k = entry["iteration"]
        path = read(work / f"iteration_{k}" / "relaxations" / "00.traj", ":")
        (relaxation,) = entry["relaxations"]
        steps = along_path(path, PATH_SPACING, PATH_SAMPLES, relaxation["uncertain_steps"])
        along = run.labelled(iteration=k, sampled_by="relaxation path")
        assert len(along) == relaxation.get("path_samples", 0) == len(steps)
