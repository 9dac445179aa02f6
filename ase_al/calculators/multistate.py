"""Several electronic states from one trainable model per state: the ML side of surface hopping.

The multistate contract (shared with the excited-state methods, e.g.
``methods("TDA-B3LYP/6-31G*", n_states=3)``): parameter ``current_state``; results
``state_energies`` (n_states, eV), ``energy`` and ``forces`` of the current state, and
``state_forces`` (n_states, N, 3) when asked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from ase_al.calculators._members import load_members, read_manifest, save_members, write_manifest
from ase_al.calculators.base import TrainableModel, is_trainable
from ase_al.calculators.committee import member_spread, member_weights, predict_batch
from ase_al.options import StrictParameters

FORMAT = "ase-al MultiState 1"


def multistate_labels(images: list[Atoms]) -> tuple[np.ndarray, np.ndarray | None]:
    """``state_energies`` (P, n_states) and, where every image has them, ``state_forces``
    (P, n_states, N, 3) from the images' calculators (e.g. labelled by an excited-state
    method, or a ``SinglePointCalculator`` whose ``results`` hold them)."""
    energies, forces = [], []
    for index, atoms in enumerate(images):
        results = getattr(atoms.calc, "results", {})
        if "state_energies" not in results:
            raise ValueError(
                f"structure {index} has no multistate 'state_energies' among its results"
            )
        energies.append(np.asarray(results["state_energies"], float))
        forces.append(results.get("state_forces"))
    if len({e.shape for e in energies}) != 1:
        raise ValueError("every structure must have the same number of states")
    has_forces = all(f is not None for f in forces)
    return np.array(energies), (np.array(forces, float) if has_forces else None)


class _CurrentState:
    """What multistate calculators share: the ``current_state`` parameter, which selects
    ``energy`` and ``forces`` among the states without recomputing them."""

    def _check_state(self, state) -> None:
        if not 0 <= int(state) < self.n_states:
            raise ValueError(f"current_state must be in 0..{self.n_states - 1}, got {state}")

    def set(self, **kwargs):
        if set(kwargs) == {"current_state"}:  # same geometry: the states are already known
            self._check_state(kwargs["current_state"])
            self.parameters.current_state = int(kwargs["current_state"])
            if "state_energies" in self.results:
                state = self.parameters.current_state
                self.results["energy"] = float(self.results["state_energies"][state])
                if "state_forces" in self.results:
                    self.results["forces"] = self.results["state_forces"][state]
                else:
                    self.results.pop("forces", None)
            return {"current_state": self.parameters.current_state}
        return super().set(**kwargs)

    def _store(self, result: dict, **per_structure) -> None:
        """``results`` of the one structure in batched ``result`` (energies (1, S), ...),
        plus ``per_structure`` entries as given."""
        state = int(self.parameters.current_state)
        self.results = {
            "state_energies": result["state_energies"][0],
            "state_forces": result["state_forces"][0],
            "energy": float(result["state_energies"][0, state]),
            "forces": result["state_forces"][0, state],
            **per_structure,
        }


class MultiState(_CurrentState, TrainableModel):
    """One trainable model per electronic state as a multistate calculator.

    Parameters
    ----------
    models : list, optional
        One model (calculator) per state, ground state first; or give ``model`` and
        ``n_states`` to have them created.
    model : str or class
        Model type for each state (``"KREG"``, ``"ANI"``, ``"MACE"``).
    n_states : int
        Number of states including the ground state.
    model_kwargs : dict, optional
        Settings for every per-state model.

    Notes
    -----
    The calculator parameter ``current_state`` (default 0, the ground state; set it with
    ``calc.set(current_state=k)``) is the state whose energy and forces are ``energy`` and
    ``forces``.
    """

    implemented_properties = ["energy", "forces", "state_energies", "state_forces"]
    default_parameters = {"current_state": 0}
    file_extension = ""

    def __init__(
        self,
        models=None,
        model="KREG",
        n_states: int | None = None,
        model_kwargs: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        from ase_al.calculators import model_class

        self.model = model
        self.model_type = model_class(model) if isinstance(model, str) else model
        self.model_kwargs = dict(model_kwargs or {})
        if models is None:
            if not n_states or n_states < 2:
                raise ValueError("give models=[...] or n_states >= 2")
            models = [self.model_type(**self.model_kwargs) for _ in range(n_states)]
        self.models = list(models)
        self._check_state(self.parameters.current_state)

    @property
    def n_states(self) -> int:
        return len(self.models)

    @property
    def is_trained(self) -> bool:
        return all(m.is_trained for m in self.models if is_trainable(m))

    @property
    def validation_rmse(self) -> float | None:
        """RMS over the states of their models' held-out energy errors (eV), if all have one."""
        errors = [getattr(m, "validation_rmse", None) for m in self.models]
        return None if None in errors else float(np.sqrt(np.mean(np.square(errors))))

    def clone(self, **changes) -> MultiState:
        """Untrained per-state models of the same settings (with ``changes``)."""
        return type(self)(models=[m.clone(**changes) for m in self.models], model=self.model)

    def train(
        self, images: list[Atoms], energies: bool = True, forces: bool = True, **kwargs
    ) -> MultiState:
        """Train each state's model on its energies (and forces) from multistate labels."""
        images = list(images)
        e, f = multistate_labels(images)
        if e.shape[1] != self.n_states:
            raise ValueError(f"labels have {e.shape[1]} states, the model {self.n_states}")
        if forces and f is None:
            raise ValueError("forces=True needs state_forces in every structure's results")
        for state, model in enumerate(self.models):
            per_state = []
            for k, atoms in enumerate(images):
                work = atoms.copy()
                work.calc = SinglePointCalculator(
                    work, energy=e[k, state], forces=f[k, state] if forces else None
                )
                per_state.append(work)
            model.train(per_state, forces=forces, **kwargs)
        self.results = {}
        return self

    def predict(self, images: list[Atoms], forces: bool = True) -> dict:
        """``state_energies`` (P, n_states) in eV and ``state_forces`` (P, n_states, N, 3)
        in eV/Å."""
        outputs = [predict_batch(m, list(images), forces=forces) for m in self.models]
        result = {"state_energies": np.stack([o["energy"] for o in outputs], axis=1)}
        if forces:
            result["state_forces"] = np.stack([np.asarray(o["forces"]) for o in outputs], axis=1)
        return result

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self._store(self.predict([self.atoms], forces=True))

    def save(self, path: str | Path) -> None:
        """Write one model file per state and ``multistate.json`` into directory ``path``."""
        path = Path(path)
        entries = save_members(path, self.models, "state")
        write_manifest(path, "multistate.json", {"format": FORMAT, "models": entries})

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> MultiState:
        meta = read_manifest(Path(path), "multistate.json", FORMAT)
        models = load_members(Path(path), meta["models"])
        return cls(models=models, model=type(models[0]), **kwargs)


def label_multistate(atoms: Atoms, calculator, n_states: int | None = None) -> Atoms:
    """A copy of ``atoms`` carrying ``state_energies`` (n_states, eV) and ``state_forces``
    (n_states, N, 3, eV/Å) of a multistate ``calculator`` (a name or a calculator), ready for
    :meth:`MultiState.train`. ``energy``/``forces`` are those of the ground state.

    ``n_states`` keeps only the lowest states (ground included): ask the calculator for a
    couple more roots than you keep, because iterative excited-state solvers find the highest
    requested root least reliably where it is nearly degenerate with the next one.
    """
    if isinstance(calculator, str):
        from ase_al.calculators import methods

        calculator = methods(calculator)
    work = atoms.copy()
    work.calc = calculator
    energies = np.asarray(calculator.get_property("state_energies", work), float)
    n_states = len(energies) if n_states is None else int(n_states)
    energies = energies[:n_states]
    state_forces = []
    for state in range(n_states):
        calculator.set(current_state=state)
        state_forces.append(calculator.get_property("forces", work))
    calculator.set(current_state=0)
    state_forces = np.array(state_forces, float)
    labelled = atoms.copy()
    labelled.calc = SinglePointCalculator(labelled, energy=energies[0], forces=state_forces[0])
    # ase-al's result names (ase_al.io.RESULTS), not ASE's: set directly
    labelled.calc.results["state_energies"] = energies
    labelled.calc.results["state_forces"] = state_forces
    return labelled


class MultiStateCommittee(_CurrentState, StrictParameters, Calculator):
    """Several multistate models as one multistate calculator with per-state uncertainties.

    The physics-informed pair of excited-state active learning: a *main* :class:`MultiState`
    trained on every state's energies and forces and an *auxiliary* one trained on energies
    only (:meth:`physics_informed`); the main model's energies and forces are the prediction
    (or, with ``weights``, the members' weighted mean), and ``state_uncertainties`` (n_states,
    eV) is the members' spread per state: |E_main,s − E_aux,s| for the pair.

    It follows the multistate contract (``current_state`` parameter; ``state_energies``,
    ``state_forces``, ``energy`` and ``forces`` results), so :class:`SurfaceHopping` runs on
    it; ``member_energies`` (n_members, n_states) lets the dynamics give the hopping
    probability of every member, whose disagreement is a second uncertainty.
    """

    implemented_properties = [
        "energy",
        "forces",
        "state_energies",
        "state_forces",
        "state_uncertainties",
        "energy_uncertainty",
    ]
    default_parameters = {"current_state": 0}

    def __init__(self, members, weights=None, spread: str = "range", **kwargs):
        super().__init__(**kwargs)
        self.weights = member_weights(len(members), weights, spread)
        if len({m.n_states for m in members}) != 1:
            raise ValueError("the members must have the same number of states")
        self.members = list(members)
        self.spread = spread
        self._check_state(self.parameters.current_state)

    @classmethod
    def physics_informed(cls, main: MultiState, auxiliary: MultiState) -> MultiStateCommittee:
        """The main model predicts; |E_main,s − E_aux,s| is state s's uncertainty."""
        return cls([main, auxiliary], weights=[1.0, 0.0], spread="range")

    @property
    def n_states(self) -> int:
        return self.members[0].n_states

    def predict(self, images: list[Atoms], forces: bool = True, uncertainty: bool = True) -> dict:
        """``state_energies`` (P, n_states), ``state_forces`` (P, n_states, N, 3) and, with
        ``uncertainty``, ``state_uncertainties`` (P, n_states), ``energy_uncertainty`` (P,)
        (the largest over the states) and ``member_energies`` (n_members, P, n_states)."""
        used = [i for i, w in enumerate(self.weights) if w > 0 or uncertainty]
        outputs = {}
        for i in used:
            weighted = self.weights[i] > 0
            outputs[i] = self.members[i].predict(list(images), forces=forces and weighted)
        weighted = [i for i in used if self.weights[i] > 0]
        w = self.weights[weighted]
        energies = np.array([outputs[i]["state_energies"] for i in used])
        weighted_energies = np.array([outputs[i]["state_energies"] for i in weighted])
        result = {"state_energies": np.tensordot(w, weighted_energies, 1)}
        if forces:
            stacked = np.array([outputs[i]["state_forces"] for i in weighted])
            result["state_forces"] = np.tensordot(w, stacked, axes=1)
        if uncertainty:
            spread = member_spread(energies, self.spread)
            result["state_uncertainties"] = spread
            result["energy_uncertainty"] = spread.max(axis=1)
            result["member_energies"] = energies
        return result

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        result = self.predict([self.atoms], forces=True, uncertainty=True)
        self._store(
            result,
            state_uncertainties=result["state_uncertainties"][0],
            energy_uncertainty=float(result["energy_uncertainty"][0]),
            member_energies=result["member_energies"][:, 0],
        )
