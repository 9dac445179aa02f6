"""ANI (torchani) and MACE (mace-torch) as trainable calculators, on GFN2-xTB ethanol data."""

import numpy as np
import pytest
from conftest import numerical_forces

pytest.importorskip("torchani")
pytest.importorskip("mace")

import torch  # noqa: E402
from ase.build import molecule  # noqa: E402
from ase.units import Hartree  # noqa: E402

from ase_al.calculators import Committee, methods, model_class  # noqa: E402
from ase_al.calculators.ani import ANI  # noqa: E402
from ase_al.calculators.mace import MACE  # noqa: E402

# small settings: seconds per model on two cores
FAST = {
    "ANI": dict(max_epochs=40, learning_rate=3e-3, force_weight=0.1, batch_size=16, threads=2),
    "MACE": dict(max_epochs=12, batch_size=16, threads=2),
}
CLASSES = {"ANI": ANI, "MACE": MACE}


def reference(images):
    return (
        np.array([a.get_potential_energy() for a in images]),
        np.array([a.get_forces() for a in images]),
    )


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.fixture(scope="module")
def data(ethanol_frames):
    # the data set is an MD trajectory: every 5th frame spreads 200 structures over it
    train = ethanol_frames[:1000:5]
    test = ethanol_frames[1000:1500:10]
    return train, test


@pytest.fixture(scope="module", params=["ANI", "MACE"])
def trained(request, data):
    train, _ = data
    train = train[::2]  # 100 structures, every 10th frame of the trajectory
    kind = request.param
    model = CLASSES[kind](seed=1, **FAST[kind]).train(train, forces=True, progress=False)
    untrained = CLASSES[kind](seed=1, **{**FAST[kind], "max_epochs": 0})
    untrained.train(train, forces=True, progress=False)
    return kind, model, untrained


def test_training_beats_untrained_model(trained, data):
    kind, model, untrained = trained
    _, test = data
    energies, forces = reference(test)
    new, old = model.predict(test), untrained.predict(test)
    # The untrained network already has the fitted per-element energies, so its energy error
    # is about the spread of the data (~0.5 eV); its forces are noise about as large as the
    # reference forces (RMS ~2 eV/Å). A few seconds of training must cut both several-fold.
    assert rmse(new["energy"], energies) < 0.35 * rmse(old["energy"], energies)
    assert rmse(new["forces"], forces) < 0.35 * rmse(old["forces"], forces)
    assert rmse(new["forces"], forces) < 0.5  # eV/Å, against forces with an RMS of 2 eV/Å
    assert model.validation_rmse is not None and model.validation_force_rmse is not None
    assert model.history[-1]["epoch"] <= FAST[kind]["max_epochs"]


def test_forces_are_energy_gradients(trained, data):
    kind, model, _ = trained
    atoms = data[1][0].copy()
    model64 = CLASSES[kind].load(save_tmp(model, kind), dtype="float64")
    atoms.calc = model64
    np.testing.assert_allclose(
        atoms.get_forces(), numerical_forces(atoms, model64, delta=1e-4), atol=2e-4
    )


_saved = {}


def save_tmp(model, kind, directory=None):
    import tempfile
    from pathlib import Path

    path = Path(directory or tempfile.mkdtemp()) / f"model{model.file_extension}"
    model.save(path)
    _saved[kind] = path
    return path


def test_save_load_round_trip(trained, data, tmp_path):
    kind, model, _ = trained
    _, test = data
    path = save_tmp(model, kind, tmp_path)
    loaded = CLASSES[kind].load(path)
    a, b = model.predict(test), loaded.predict(test)
    np.testing.assert_array_equal(a["energy"], b["energy"])
    np.testing.assert_array_equal(a["forces"], b["forces"])
    assert loaded.symbols == model.symbols
    assert loaded.validation_rmse == model.validation_rmse
    assert loaded.history == model.history


def test_wrong_element_is_refused(trained):
    _, model, _ = trained
    with pytest.raises(ValueError, match="contains N.*knows only H, C, O"):
        model.predict([molecule("HCN")])
    bad = molecule("CH3CH2OH")
    bad.positions[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict([bad])


def test_warm_start_continues_from_the_weights(trained, data, tmp_path):
    """``train(..., warm_start=True)`` starts from the model's weights (MLatom's
    ``reuse_model``): with no epochs it keeps them exactly, where a fresh fit gives the
    untrained network; a few more epochs on more data stay at the trained model's accuracy,
    starting at the rate where its fit ended (3 epochs at the full rate throw the network
    off, and the starting weights are kept); a gentle fit keeps its own best epoch."""
    from ase_al.errors import NotTrainedError

    kind, model, untrained = trained
    train, test = data
    energies, _ = reference(test)
    path = save_tmp(model, kind, tmp_path)
    kept = CLASSES[kind].load(path).train(train, warm_start=True, max_epochs=0, progress=False)
    np.testing.assert_array_equal(
        kept.predict(test, forces=False)["energy"], model.predict(test, forces=False)["energy"]
    )
    more = CLASSES[kind].load(path).train(train, warm_start=True, max_epochs=3, progress=False)
    assert more.history[0]["learning_rate"] == pytest.approx(
        min(model.history[-1]["learning_rate"], model.training["learning_rate"])
    )
    error = rmse(more.predict(test, forces=False)["energy"], energies)
    fresh = CLASSES[kind](seed=1, **{**FAST[kind], "max_epochs": 3}).train(train, progress=False)
    assert error < 0.6 * rmse(fresh.predict(test, forces=False)["energy"], energies)
    assert error < 1.5 * rmse(model.predict(test, forces=False)["energy"], energies)
    # a gentle warm fit (small rate, its loss near the start's): its own best epoch is kept,
    # not the starting weights, whose validation loss is biased low (they were chosen on it)
    gentle = (
        CLASSES[kind]
        .load(path)
        .train(
            train, warm_start=True, max_epochs=1, learning_rate=1e-5, min_lr=1e-7, progress=False
        )
    )
    moved = gentle.predict(test, forces=False)["energy"]
    assert np.abs(moved - model.predict(test, forces=False)["energy"]).max() > 1e-6
    assert rmse(moved, energies) < 1.2 * rmse(model.predict(test, forces=False)["energy"], energies)
    with pytest.raises(NotTrainedError, match="continue its training"):
        CLASSES[kind](**FAST[kind]).train(train, warm_start=True)
    with pytest.raises(ValueError, match="contains N"):
        CLASSES[kind].load(path).train(train + [molecule("HCN")] * 2, warm_start=True)


def test_warm_start_weighs_new_structures_like_all_old_ones(trained, data, tmp_path):
    """A warm start judges its epochs by the mean of the held-out losses over the structures
    its weights were fitted to and over those appended since (``n_fitted`` marks where, and
    survives saving); ``new_repeats`` must be an integer >= 1."""
    kind, model, _ = trained
    train, test = data
    assert model.n_fitted == len(train[::2])
    loaded = CLASSES[kind].load(save_tmp(model, kind, tmp_path))
    assert loaded.n_fitted == model.n_fitted
    images = list(train[::2]) + list(test[:40])
    monitor = np.arange(0, len(images), 3)
    cfg = {**loaded.training}
    old, new = monitor[monitor < 100], monitor[monitor >= 100]
    with loaded._torch_settings():
        energies, forces = reference(images)
        items = loaded._prepare(images, energies, list(forces))
        loss, e_rmse, _ = loaded._judge(items, monitor, 100, cfg)
        old_loss, new_loss = loaded._errors(items, old, cfg)[0], loaded._errors(items, new, cfg)[0]
        assert loss == pytest.approx(0.5 * (old_loss + new_loss), rel=1e-9)
        assert e_rmse == pytest.approx(loaded._errors(items, monitor, cfg)[1], rel=1e-6)
        assert loaded._judge(items, old, 100, cfg) == pytest.approx(loaded._errors(items, old, cfg))
    with pytest.raises(ValueError, match="new_repeats must be >= 1"):
        loaded.train(images, warm_start=True, new_repeats=0, progress=False)
    with pytest.raises(TypeError, match="new_repeats must be an integer"):
        loaded.train(images, warm_start=True, new_repeats=1.5, progress=False)
    if kind == "ANI":  # the structures new to the fit are visited new_repeats times per epoch
        visits = np.zeros(len(images), int)
        chunks = loaded._chunks

        def counted(items, indices, batch_size):
            if batch_size == loaded.training["batch_size"]:  # training batches
                np.add.at(visits, indices, 1)
            return chunks(items, indices, batch_size)

        loaded._chunks = counted
        loaded.train(images, warm_start=True, new_repeats=3, max_epochs=1, progress=False)
        assert loaded.n_fitted == len(images)
        trained_on = np.flatnonzero(visits)
        assert set(visits[trained_on[trained_on < 100]]) == {1}
        assert set(visits[trained_on[trained_on >= 100]]) == {3}


def test_weight_average_follows_the_exponential_law_and_swaps_in_place(data):
    """The averaged weights after t steps at fixed weights w1, from w0: w1 + (w0 - w1)·d^t;
    with the ramp, the first steps follow the iterates closely; the module's own weights come
    back after the averaged ones were used; a decay outside [0, 1) is refused."""
    from ase_al.calculators._torch import WeightAverage

    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    w0 = [p.detach().clone() for p in module.parameters()]
    average = WeightAverage(module, 0.9, ramp_up=False)
    # float32 arithmetic on weights of order 1: an absolute tolerance, as a weight can sit near 0
    close = {"rtol": 1e-6, "atol": 1e-6}
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    for _ in range(7):
        average.update()
    with average.in_place():
        for p, start in zip(module.parameters(), w0, strict=True):
            np.testing.assert_allclose(p.detach(), start + 1.0 - 0.9**7, **close)
    for p, start in zip(module.parameters(), w0, strict=True):
        np.testing.assert_allclose(p.detach(), start + 1.0, **close)
    ramped = WeightAverage(module, 0.99)  # step 0 weighs the iterate by 1 - 1/10
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    ramped.update()
    with ramped.in_place():
        for p, start in zip(module.parameters(), w0, strict=True):
            np.testing.assert_allclose(p.detach(), start + 1.0 + 0.9, **close)
    train, _ = data
    with pytest.raises(ValueError, match="ema_decay must be a number in"):
        ANI(**FAST["ANI"]).train(train[:10], ema_decay=1.0, progress=False)


def test_held_out_structures_stay_held_out_as_data_grow():
    from ase_al.calculators._torch import held_out

    small, large = held_out(200, 3, 0.1), held_out(500, 3, 0.1)
    assert set(small) == set(large[large < 200])  # appending keeps the earlier split
    assert 0.06 < len(large) / 500 < 0.14  # about the fraction asked for
    assert len(held_out(1, 3, 0.99)) == 0  # one structure is kept for training
    # structures to be trained on whatever the draw: left out, the rest of the split as it was
    kept = held_out(500, 3, 0.1, keep=large[:5].tolist() + [0, 1])
    assert set(kept) == set(large[5:]) - {0, 1}


def test_structures_marked_always_train_are_never_held_out(data):
    """``info["always_train"]``: no draw holds the structure out; with every structure
    marked there is no validation split, and so no validation error."""
    train, _ = data
    images = [atoms.copy() for atoms in train[:12]]
    for atoms, source in zip(images, train[:12], strict=True):
        atoms.calc = source.calc
    settings = dict(FAST["ANI"], max_epochs=1, validation_fraction=0.5)
    model = ANI(**settings).train(images, progress=False)
    assert model.validation_rmse is not None  # about half held out
    for atoms in images:
        atoms.info["always_train"] = True
    model = ANI(**settings).train(images, progress=False)
    assert model.validation_rmse is None and model.validation_force_rmse is None


@pytest.mark.parametrize("kind", ["ANI", "MACE"])
def test_energies_only_training(kind, data):
    train, test = data
    settings = {**FAST[kind], "max_epochs": FAST[kind]["max_epochs"] // 2}
    model = CLASSES[kind](seed=2, **settings).train(train[:100], forces=False, progress=False)
    untrained = CLASSES[kind](seed=2, **{**settings, "max_epochs": 0})
    untrained.train(train[:100], forces=False, progress=False)
    energies, _ = reference(test)
    assert model.validation_force_rmse is None
    error = rmse(model.predict(test, forces=False)["energy"], energies)
    assert error < 0.5 * rmse(untrained.predict(test, forces=False)["energy"], energies)


def test_same_seed_same_model(data):
    train, test = data
    a = ANI(seed=5, max_epochs=3, threads=2).train(train[:50], progress=False)
    b = ANI(seed=5, max_epochs=3, threads=2).train(train[:50], progress=False)
    c = ANI(seed=6, max_epochs=3, threads=2).train(train[:50], progress=False)
    np.testing.assert_array_equal(a.predict(test)["energy"], b.predict(test)["energy"])
    assert not np.allclose(a.predict(test)["energy"], c.predict(test)["energy"])


def ani1x_like_torchani_model(members=2):
    """An ANI-1x-architecture ensemble built by torchani itself (random weights: the real
    parameters are not downloadable here), as torchani.models.ANI1x assembles it."""
    import torchani

    asm = torchani.arch.Assembler()
    asm.set_symbols(("H", "C", "N", "O"))
    asm.set_global_cutoff_fn("cosine")
    asm.set_aev_computer(radial="ani1x", angular="ani1x")
    asm.set_atomic_networks(ctor="ani1x")
    asm.set_gsaes_as_self_energies("wb97x-631gd")
    torch.manual_seed(0)
    return asm.assemble(members).double()


def test_torchani_state_dict_loads_with_same_energies(tmp_path):
    upstream = ani1x_like_torchani_model()
    path = tmp_path / "ani1x_state_dict.pt"
    torch.save(upstream.state_dict(), path)
    atoms = molecule("CH3CH2OH")
    species = torch.tensor([atoms.numbers])
    coords = torch.tensor([atoms.positions], requires_grad=True)
    energy = upstream((species, coords)).energies
    (grad,) = torch.autograd.grad(energy.sum(), coords)

    model = ANI.load(path, dtype="float64")
    assert model.n_members == 2
    atoms.calc = model
    assert atoms.get_potential_energy() == pytest.approx(float(energy) * Hartree, abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), -grad[0].numpy() * Hartree, atol=1e-8)
    members = upstream((species, coords), ensemble_values=True).energies.detach().numpy()
    assert model.get_property("energy_uncertainty", atoms) == pytest.approx(members.std() * Hartree)
    # the method name resolves to the same file
    named = methods("ANI-1x", model_file=path, dtype="float64")
    atoms.calc = named
    assert atoms.get_potential_energy() == pytest.approx(float(energy) * Hartree, abs=1e-8)


def test_missing_pretrained_file_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHANI_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ani2x_state_dict.pt.*does not download"):
        methods("ANI-2x")
    with pytest.raises(FileNotFoundError, match="not found"):
        MACE.load(tmp_path / "foundation.model")
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(ValueError, match="not a readable torch file"):
        ANI.load(tmp_path / "junk.pt")


def test_mace_file_saved_by_mace_torch_loads_with_same_energies(tmp_path):
    from e3nn import o3
    from mace import modules
    from mace.calculators import MACECalculator

    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        upstream = modules.ScaleShiftMACE(
            r_max=4.5,
            num_bessel=6,
            num_polynomial_cutoff=5,
            max_ell=2,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
            num_interactions=2,
            num_elements=3,
            hidden_irreps=o3.Irreps("8x0e+8x1o"),
            MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.array([-13.6, -1029.0, -2041.0]),
            avg_num_neighbors=6.0,
            atomic_numbers=[1, 6, 8],
            correlation=2,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=1.3,
            atomic_inter_shift=0.0,
        )
    finally:
        torch.set_default_dtype(torch.float32)
    path = tmp_path / "upstream.model"
    torch.save(upstream, path)  # what mace-torch's training script writes
    atoms = molecule("CH3CH2OH")
    atoms.calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()

    model = MACE.load(path)
    assert model.symbols == ["H", "C", "O"]
    atoms.calc = model
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-8)


@pytest.mark.slow  # ~45 s; committees of trained models pass the model contract by default
def test_committee_of_four_networks(data):
    train, test = data
    rng = np.random.default_rng(0)
    members = []
    for seed in range(4):
        subset = [train[i] for i in np.sort(rng.choice(len(train), 120, replace=False))]
        members.append(ANI(seed=seed, **FAST["ANI"]).train(subset, progress=False))
    committee = Committee(members)
    result = committee.predict(test[:10])
    single = np.array([m.predict(test[:10])["energy"] for m in members])
    forces = np.array([m.predict(test[:10])["forces"] for m in members])
    np.testing.assert_allclose(result["energy"], single.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result["energy_uncertainty"], single.std(axis=0), rtol=1e-10)
    np.testing.assert_allclose(result["forces"], forces.mean(axis=0), rtol=1e-10, atol=1e-12)
    # far from the data (C-O bond stretched from ~1.43 Å, its range in the 300 K trajectory,
    # to 2.2 Å) the members disagree more. Sixty-epoch members still disagree by about their
    # own error (~0.07 eV) on data-like structures, so the bound is against the largest
    # spread over all 50 test structures, not a fixed multiple of a small number.
    near = committee.predict(test)["energy_uncertainty"]
    c, o = 1, 2  # C1-O bond of the data set's atom order
    stretched = []
    for atoms in test[:10]:
        atoms = atoms.copy()
        assert atoms.get_chemical_symbols()[c] == "C" and atoms.get_chemical_symbols()[o] == "O"
        direction = atoms.positions[o] - atoms.positions[c]
        atoms.positions[o] = atoms.positions[c] + 2.2 * direction / np.linalg.norm(direction)
        stretched.append(atoms)
    far = committee.predict(stretched)["energy_uncertainty"]
    assert far.min() > near.max()
    assert np.median(far) > 2 * np.median(near)


def test_model_types_are_registered():
    assert model_class("ANI") is ANI and model_class("mace") is MACE


class _Logs:
    """A model stand-in whose training logs one line (what a warm fit that keeps its
    starting weights does in a worker)."""

    threads = None

    def train(self, images, progress=None, **settings):
        import logging

        logging.getLogger("ase_al").info("fitted %d structures on %s", len(images), self.threads)
        return self


def test_pair_fitted_in_workers_is_the_pair_fitted_here(data, caplog):
    """The learner fits a pair's (or committee's) torch networks at once in worker
    processes (:func:`ase_al.active_learning.training.fit_all`): the same weights as fitted
    one after the other here with the same threads, and the workers' log lines reach this
    process's log."""
    import logging

    from ase_al.active_learning.training import _fit_in_worker, fit_all
    from ase_al.executors import default_executor

    train, _ = data
    train = train[:30]

    def jobs(threads):
        return [
            (ANI(seed=3, max_epochs=2, threads=threads), train, {"forces": True}),
            (ANI(seed=4, max_epochs=2, threads=threads), train, {"forces": False}),
        ]

    apart = fit_all(jobs(1), concurrent=True)
    here = fit_all(jobs(1), concurrent=False)
    for a, b in zip(apart, here, strict=True):
        assert a.is_trained and a.threads == 1 and a.n_fitted == 30
        for x, y in zip(a.module.parameters(), b.module.parameters(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
        assert a.validation_rmse == b.validation_rmse
    model, records = default_executor().submit(_fit_in_worker, _Logs(), train, {}, 1).result()
    assert records == [(logging.INFO, "fitted 30 structures on 1")]
    assert model.threads is None  # the worker's share of the cores is not kept
    # a warm fit thrown off (a learning rate of at least 10 x min_lr = 10) keeps its
    # starting weights and says so, in the worker; the line is logged here
    with caplog.at_level(logging.INFO, logger="ase_al"):
        kept = fit_all(
            [(a, train, {"warm_start": True, "max_epochs": 2, "min_lr": 1.0}) for a in apart]
        )
    assert caplog.text.count("the starting weights are kept") == 2
    for a, b in zip(kept, here, strict=True):
        for x, y in zip(a.module.parameters(), b.module.parameters(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    # the in-process path is used by anything but CPU torch networks, and logs here as well
    with caplog.at_level(logging.INFO, logger="ase_al"):
        fit_all([(_Logs(), train, {}), (_Logs(), train[:3], {})])
    assert "fitted 30 structures on None" in caplog.text
    assert "fitted 3 structures on None" in caplog.text
