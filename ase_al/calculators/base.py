"""What a trainable model is, declared once: :class:`TrainableModel`.

Every trainable model of ase-al (KREG, ANI, MACE, Committee, Composite, MultiState,
KREGDipole) derives from it, and so can a user's own model; the active learner relies on
this contract and on nothing else, and ``tests/test_model_contract.py`` checks every model
against it. The contract:

- **hyperparameters in** ``__init__`` (scikit-learn's habit), learned state set by
  :meth:`~TrainableModel.train` only; unknown keywords are a ``TypeError``;
- ``train(images, *, forces=True) -> self``: images are ``Atoms`` carrying reference
  results (e.g. a ``SinglePointCalculator``); ``forces=False`` fits energies only;
- ``predict(images, *, forces=True) -> dict``: ase-al's result names with a leading batch
  axis (``energy`` (P,) eV, ``forces`` (P, N, 3) eV/Å, ...; :mod:`ase_al.io`);
- it is an ASE calculator with the same results for one structure;
- ``save(path)`` / ``load(path)`` (classmethod) reproduce the predictions; the file or
  folder name ends in :attr:`~TrainableModel.file_extension`;
- ``clone(**changes)``: an untrained model with the same settings (and these changes);
- it pickles (worker processes, ``copy.deepcopy``);
- before training or loading, ``predict``/``save`` raise
  :class:`~ase_al.errors.NotTrainedError`; structures with other elements (or, for
  models tied to one molecule, another atom order) raise a ``ValueError`` naming them.

Optional, with defaults here: ``validation_rmse`` (eV, a held-out error the training
measured, else None), ``hyperparameters`` (the chosen ones, to reuse), ``uses_equilibrium``
(the model takes an ``equilibrium=`` reference geometry, as KREG's RE descriptor does),
``seed`` (networks: a different initialisation per committee member), and a ``warm_start``
keyword of ``train`` (continue from the present weights; ``ActiveLearner(warm_start=True)``
refuses a model whose ``train`` has none).
"""

from __future__ import annotations

import abc
import copy
import functools
from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator

from ase_al.options import StrictParameters

#: ``atoms.info`` key of a training structure that a model's fit never draws into its
#: validation split (the active learner marks the structures it labelled on the model's own
#: relaxation paths; the torch networks honour it)
ALWAYS_TRAIN = "always_train"


class TrainableModel(StrictParameters, Calculator, abc.ABC):
    """Base of every trainable model (see the module docstring for the contract)."""

    #: the suffix of what :meth:`save` writes ("" for a folder)
    file_extension = ".npz"
    #: whether the constructor takes ``equilibrium=`` (a reference geometry)
    uses_equilibrium = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            if "_settings" not in self.__dict__:  # the outermost constructor's arguments
                self.__dict__["_settings"] = (tuple(args), dict(kw))
            init(self, *args, **kw)

        cls.__init__ = recording_init

    # -- the contract ------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def is_trained(self) -> bool:
        """True once :meth:`train` or :meth:`load` has set the learned state."""

    @abc.abstractmethod
    def train(self, images: list[Atoms], *, forces: bool = True) -> TrainableModel:
        """Fit to ``images`` (reference energies and, with ``forces``, forces); returns self."""

    @abc.abstractmethod
    def predict(self, images: list[Atoms], *, forces: bool = True) -> dict:
        """Batched results (:mod:`ase_al.io` names with a leading batch axis)."""

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the trained model to ``path``."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path) -> TrainableModel:
        """A model written by :meth:`save`."""

    def clone(self, **changes) -> TrainableModel:
        """An untrained model with the same settings (the constructor's arguments), with
        ``changes`` applied (e.g. ``clone(seed=2)``, ``clone(**model.hyperparameters)``)."""
        args, kwargs = self.__dict__.get("_settings", ((), {}))
        return type(self)(*copy.deepcopy(args), **{**copy.deepcopy(kwargs), **changes})

    # -- optional, with defaults -------------------------------------------------------
    #: held-out energy RMSE (eV) measured while training, if the training measured one
    validation_rmse: float | None = None

    @property
    def hyperparameters(self) -> dict:
        """The hyperparameters in use (after training: the chosen ones), to reuse elsewhere."""
        return {}


def is_trainable(model) -> bool:
    """True for a :class:`TrainableModel` class or instance."""
    cls = model if isinstance(model, type) else type(model)
    return issubclass(cls, TrainableModel)


__all__ = ["TrainableModel", "is_trainable"]


def _is_dipole_file(path) -> bool:
    """A KREGDipole ``.npz`` (its arrays, no KREG ``meta``)."""
    import numpy as np

    try:
        with np.load(path) as data:
            return "meta" not in data.files and "charge" in data.files
    except (OSError, ValueError):
        return False


def load_saved_model(path):
    """A trained model from what :meth:`TrainableModel.save` (or an active-learning iteration)
    wrote at ``path``, its type told by the files: a folder with ``multistate.json``,
    ``committee.json``, ``composite.json`` or ``models.json`` (an AL iteration: its
    uncertainty-aware committee), a KREG (or KREGDipole) ``.npz``, an ANI ``.pt``, a MACE
    ``.model``.
    ``ValueError`` when ``path`` is none of these."""
    from pathlib import Path

    path = Path(path)
    folders = {
        "multistate.json": "ase_al.calculators.multistate:MultiState",
        "committee.json": "ase_al.calculators.committee:Committee",
        "composite.json": "ase_al.calculators.composite:Composite",
    }
    if path.is_dir():
        for marker, target in folders.items():
            if (path / marker).is_file():
                import importlib

                module, name = target.split(":")
                return getattr(importlib.import_module(module), name).load(path)
        if (path / "models.json").is_file():
            from ase_al.active_learning.training import load_models

            return load_models(path)
    elif path.is_file():
        suffixes = {
            ".npz": "ase_al.calculators.kreg:KREG",
            ".pt": "ase_al.calculators.ani:ANI",
            ".model": "ase_al.calculators.mace:MACE",
        }
        if path.suffix in suffixes:
            import importlib

            if path.suffix == ".npz" and _is_dipole_file(path):
                suffixes[".npz"] = "ase_al.calculators.dipole:KREGDipole"
            module, name = suffixes[path.suffix].split(":")
            return getattr(importlib.import_module(module), name).load(path)
    raise ValueError(
        f"{path} is not a saved model (a KREG .npz, ANI .pt, MACE .model, or a folder with "
        "multistate.json, committee.json, composite.json or an AL iteration's models.json)"
    )
