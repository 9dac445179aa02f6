"""One contract, checked on every trainable model (scikit-learn's estimator_checks habit):
KREG, ANI, MACE, Committee, Composite, MultiState, KREGDipole and a minimal model written
here. ``check_model`` fails (AssertionError) for a model that breaks the contract."""

import pickle

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from scipy.spatial.transform import Rotation

import ase_al
from ase_al.calculators import TrainableModel
from ase_al.calculators.multistate import label_multistate
from ase_al.dynamics import TriatomicAvoidedCrossing
from ase_al.errors import NotTrainedError
from ase_al.io import RESULTS
from ase_al.labelling import SerialExecutor


class PairLinear(TrainableModel):
    """The minimal model a user would write: E = c₀ + Σ_{i<j} c_ij r_ij, fitted by linear
    least squares to energies (and forces, which are linear in the c_ij too)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, ridge: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.ridge = ridge
        self.numbers = None
        self.coefficients = None

    @property
    def is_trained(self):
        return self.coefficients is not None

    def _check(self, images):
        for atoms in images:
            if not np.array_equal(atoms.numbers, self.numbers):
                raise ValueError(f"{atoms.get_chemical_formula()}: not the atoms of the model")

    @staticmethod
    def _features(positions):
        i, j = np.triu_indices(positions.shape[1], 1)
        d = positions[:, i] - positions[:, j]  # (P, pairs, 3)
        r = np.linalg.norm(d, axis=-1)
        n = positions.shape[1]
        # ∂r_ij/∂x_k: +d/r on i, -d/r on j
        grad = np.zeros((len(positions), len(i), n, 3))
        unit = d / r[..., None]
        grad[:, np.arange(len(i)), i] = unit
        grad[:, np.arange(len(i)), j] = -unit
        return r, grad

    def train(self, images, *, forces=True):
        images = list(images)
        self.numbers = images[0].numbers.copy()
        self._check(images)
        r, grad = self._features(np.array([a.positions for a in images]))
        rows = [np.hstack([np.ones((len(r), 1)), r])]
        target = [np.array([a.get_potential_energy() for a in images])]
        if forces:
            g = -grad.transpose(0, 2, 3, 1).reshape(-1, r.shape[1])
            rows.append(np.hstack([np.zeros((len(g), 1)), g]))
            target.append(np.array([a.get_forces() for a in images]).ravel())
        a, b = np.vstack(rows), np.concatenate(target)
        self.coefficients = np.linalg.solve(a.T @ a + self.ridge * np.eye(a.shape[1]), a.T @ b)
        return self

    def predict(self, images, *, forces=True):
        if not self.is_trained:
            raise NotTrainedError(self)
        images = list(images)
        self._check(images)
        r, grad = self._features(np.array([a.positions for a in images]))
        result = {"energy": self.coefficients[0] + r @ self.coefficients[1:]}
        if forces:
            result["forces"] = -np.einsum("pkna,k->pna", grad, self.coefficients[1:])
        return result

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        super().calculate(atoms, properties, system_changes or ["positions"])
        result = self.predict([self.atoms])
        self.results = {"energy": float(result["energy"][0]), "forces": result["forces"][0]}

    def save(self, path):
        if not self.is_trained:
            raise NotTrainedError(self, "save it")
        with open(path, "wb") as handle:
            np.savez(handle, numbers=self.numbers, coefficients=self.coefficients)

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            model = cls()
            model.numbers, model.coefficients = data["numbers"], data["coefficients"]
        return model


class WrongSignForces(PairLinear):
    """Breaks the contract: its forces are +∇E."""

    def predict(self, images, *, forces=True):
        result = super().predict(images, forces=forces)
        if forces:
            result["forces"] = -result["forces"]
        return result


class ForgetsOnLoad(PairLinear):
    """Breaks the contract: a loaded model predicts something else."""

    @classmethod
    def load(cls, path):
        model = super().load(path)
        model.coefficients = model.coefficients * 1.01
        return model


# -- data ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def water():
    """Water near its GFN2-xTB minimum, 24 Wigner samples labelled with GFN2-xTB (energies,
    forces, dipoles) and with GFN1-xTB (the Composite's target); 8 more to test on."""
    calc = ase_al.methods("GFN2-xTB")
    eq = ase_al.optimize_geometry(molecule("H2O"), calc)
    samples = ase_al.samplers.wigner(eq, ase_al.freq(eq, calc), n=32, temperature=600, seed=5)
    gfn2, gfn1 = [], []
    target = ase_al.methods("GFN1-xTB")
    for atoms in samples:
        for method, out in ((calc, gfn2), (target, gfn1)):
            work = Atoms(atoms.numbers, atoms.positions)
            work.calc = method
            labels = {"energy": work.get_potential_energy(), "forces": work.get_forces()}
            if method is calc:
                labels["dipole"] = work.get_dipole_moment()
            work.calc = SinglePointCalculator(work, **labels)
            out.append(work)
    return {"train": gfn2[:24], "test": gfn2[24:], "gfn1": gfn1[:24]}


@pytest.fixture(scope="module")
def triatomic():
    """Two-state labels of the model triatomic (state_energies, state_forces)."""
    rng = np.random.default_rng(2)
    base = Atoms("OH2", positions=[[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    images = []
    for _ in range(30):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=0.05, size=(3, 3))
        images.append(label_multistate(atoms, TriatomicAvoidedCrossing()))
    return {"train": images[:24], "test": images[24:]}


def _factories():
    torch_settings = {"max_epochs": 3, "dtype": "float64", "seed": 1}
    return {
        "PairLinear": (lambda: PairLinear(), "energy", "water"),
        "KREG": (lambda: ase_al.calculators.KREG(), "energy", "water"),
        "ANI": (
            lambda: ase_al.calculators.ANI(hidden_layers=[16, 8], **torch_settings),
            "energy",
            "water",
        ),
        "MACE": (
            lambda: ase_al.calculators.MACE(
                hidden_irreps="8x0e + 8x1o", num_interactions=1, **torch_settings
            ),
            "energy",
            "water",
        ),
        "Committee": (
            lambda: ase_al.calculators.Committee.physics_informed(
                ase_al.calculators.KREG(), ase_al.calculators.KREG()
            ),
            "energy",
            "water",
        ),
        "Composite": (
            lambda: ase_al.calculators.Composite(
                baseline="GFN2-xTB", correction="KREG", n_corrections=2
            ),
            "energy",
            "composite",
        ),
        "MultiState": (
            lambda: ase_al.calculators.MultiState(model="KREG", n_states=2),
            "multistate",
            "triatomic",
        ),
        "KREGDipole": (lambda: ase_al.calculators.KREGDipole(), "dipole", "water"),
    }


def _random_rotation(seed=0):
    return Rotation.random(random_state=seed).as_matrix()


def _moved(images, rotation, shift):
    out = []
    for atoms in images:
        moved = Atoms(atoms.numbers, atoms.positions @ rotation.T + shift)
        out.append(moved)
    return out


def _close(a, b, what, rtol=1e-6, atol=1e-6):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} and {b.shape}"
    assert np.allclose(a, b, rtol=rtol, atol=atol), (
        f"{what}: differ by up to {np.max(np.abs(a - b)):.3g}"
    )


def check_model(factory, kind, train, test, tmp_path, other_atoms):
    """The contract, as assertions. ``kind``: "energy", "multistate" or "dipole"."""
    model = factory()
    assert isinstance(model, TrainableModel)
    assert not model.is_trained
    for action in (lambda: model.predict(test), lambda: model.save(tmp_path / "untrained")):
        with pytest.raises(NotTrainedError):
            action()
    with pytest.raises(TypeError, match="unknown keyword"):
        model.set(no_such_setting=1)

    fit_forces = kind != "dipole"
    assert model.train(train, forces=fit_forces) is model, "train must return the model"
    assert model.is_trained
    result = model.predict(test, forces=fit_forces)
    allowed = {"energy", "forces", "dipole", "charges"} | set(RESULTS)
    assert set(result) <= allowed, f"predict returned names {set(result) - allowed}"
    p, n = len(test), len(test[0])
    key = {"energy": "energy", "multistate": "state_energies", "dipole": "dipole"}[kind]
    values = np.asarray(result[key])
    if kind == "energy":
        assert values.shape == (p,) and np.asarray(result["forces"]).shape == (p, n, 3)
    elif kind == "multistate":
        s = values.shape[1]
        assert values.shape == (p, s) and np.asarray(result["state_forces"]).shape == (p, s, n, 3)
    else:
        assert values.shape == (p, 3)

    # the calculator gives predict's results for one structure
    atoms = test[0].copy()
    atoms.calc = model
    if kind == "dipole":
        _close(atoms.get_dipole_moment(), values[0], "calculator dipole vs predict")
    else:
        energy = values[0] if kind == "energy" else values[0, 0]
        forces = result["forces"][0] if kind == "energy" else result["state_forces"][0, 0]
        _close(atoms.get_potential_energy(), energy, "calculator energy vs predict")
        _close(atoms.get_forces(), forces, "calculator forces vs predict")

        # forces = -dE/dx (five-point central differences, 1e-3 Å; KREG with λ ~ 1e-10
        # carries ~1e-8 eV of round-off in its energies, so smaller steps get noisier)
        h, fd = 1e-3, np.zeros((n, 3))
        for i in range(n):
            for c in range(3):
                shifted = []
                for step in (2, 1, -1, -2):
                    x = test[0].positions.copy()
                    x[i, c] += step * h
                    out = model.predict([Atoms(test[0].numbers, x)], forces=False)[key]
                    shifted.append(np.asarray(out)[0] if kind == "energy" else out[0, 0])
                e2, e1, em1, em2 = shifted
                fd[i, c] = -(-e2 + 8 * e1 - 8 * em1 + em2) / (12 * h)
        _close(forces, fd, "forces vs -dE/dx (finite differences)", rtol=1e-4, atol=1e-4)

    # invariance: energies unchanged, forces (and dipoles) rotate with the molecule
    rotation = _random_rotation(3)
    moved = model.predict(_moved(test, rotation, np.array([1.5, -2.0, 0.7])), forces=fit_forces)
    if kind == "dipole":
        _close(moved["dipole"], values @ rotation.T, "dipole under rotation + translation")
    else:
        _close(moved[key], values, "energy under rotation + translation", atol=1e-6)
        name = "forces" if kind == "energy" else "state_forces"
        _close(moved[name], np.asarray(result[name]) @ rotation.T, "forces under rotation")

    # save/load and pickling reproduce the predictions
    path = tmp_path / f"model{type(model).file_extension}"
    model.save(path)
    loaded = type(model).load(path)
    _close(loaded.predict(test, forces=fit_forces)[key], values, "save/load", 1e-9, 1e-9)
    unpickled = pickle.loads(pickle.dumps(model))
    _close(unpickled.predict(test, forces=fit_forces)[key], values, "pickle", 1e-9, 1e-9)

    # clone: untrained, same settings (trained on the same data: the same model)
    clone = model.clone()
    assert type(clone) is type(model) and not clone.is_trained
    clone.train(train, forces=fit_forces)
    _close(clone.predict(test, forces=fit_forces)[key], values, "clone trained again", 1e-6)

    # structures of another molecule are refused with a ValueError
    with pytest.raises(ValueError):
        model.predict(other_atoms, forces=fit_forces)


@pytest.mark.parametrize("name", list(_factories()))
def test_every_model_fulfils_the_contract(name, water, triatomic, tmp_path):
    if name in ("ANI", "MACE"):
        pytest.importorskip("torchani" if name == "ANI" else "mace")
    factory, kind, data = _factories()[name]
    other = [molecule("NH3")]
    if data == "triatomic":
        train, test = triatomic["train"], triatomic["test"]
    elif data == "composite":
        train, test = water["gfn1"], water["test"]
    else:
        train, test = water["train"], water["test"]
    check_model(factory, kind, train, test, tmp_path, other)


@pytest.mark.parametrize(
    "broken, message",
    [(WrongSignForces, "finite differences"), (ForgetsOnLoad, "save/load")],
)
def test_the_contract_check_fails_for_a_model_that_breaks_it(broken, message, water, tmp_path):
    with pytest.raises(AssertionError, match=message):
        check_model(broken, "energy", water["train"], water["test"], tmp_path, [molecule("NH3")])


def test_the_minimal_model_runs_in_the_active_learner(tmp_path):
    """The plugin promise: a model written in a test file learns in ActiveLearner."""
    learner = ase_al.ActiveLearner(
        molecule("H2O"),
        "GFN2-xTB",
        model=PairLinear,
        workdir=tmp_path,
        init_batch=20,
        max_init_points=20,
        uq_threshold=0.01,
        sampler_kwargs={"n_trajectories": 5, "max_time_fs": 10.0},
        max_iterations=1,
        executor=SerialExecutor(),
        progress=False,
    )
    pair = learner.run()
    assert isinstance(pair.members[0], PairLinear) and pair.members[0].is_trained
    assert (tmp_path / "iteration_1" / "main.npz").exists()
    state = learner._state()
    assert len(state["iterations"]) == 1 and state["iterations"][0]["n_train"] == 20
