"""What ANI and MACE share: devices, seeds, threads, and the training loop.

A subclass supplies the network (:meth:`TorchPotential._build`), turns structures into its
batches (:meth:`_batches`) and evaluates a batch (:meth:`_evaluate`); this class fits it with
Adam, a plateau learning-rate schedule, early stopping on a validation split and the
best-validation weights restored at the end.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.data import chemical_symbols
from tqdm.auto import tqdm

from ase_al.calculators.base import ALWAYS_TRAIN, TrainableModel
from ase_al.errors import NotTrainedError, check_atoms, require
from ase_al.options import check_int

log = logging.getLogger("ase_al")

#: a warm start keeps the weights it started from only when its best epoch's validation loss
#: is above this multiple of theirs (see ``TorchPotential._fit``)
WARM_KEEP = 1.25

TRAINING_DEFAULTS = {
    "max_epochs": 1000,
    "batch_size": 16,
    "learning_rate": 1e-3,
    "lr_factor": 0.5,
    "lr_patience": 50,
    "min_lr": 1e-5,
    "early_stopping": 150,
    "validation_fraction": 0.1,
    "energy_weight": 1.0,
    "force_weight": 1.0,
    "ema_decay": 0.99,
    "new_repeats": 1,
}


def torch():
    return require("torch", "ani")


def resolve_device(device: str):
    """``"auto"``: the GPU when torch sees one, else the CPU; otherwise ``torch.device(device)``."""
    th = torch()
    if device == "auto":
        return th.device("cuda" if th.cuda.is_available() else "cpu")
    try:
        return th.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: {err}") from None


def resolve_dtype(dtype):
    th = torch()
    names = {"float32": th.float32, "float64": th.float64}
    if isinstance(dtype, str) and dtype in names:
        return names[dtype]
    if dtype in names.values():
        return dtype
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def index_draws(n: int, *seed: int) -> np.ndarray:
    """One uniform number per index ``i < n``, the first of the ``[*seed, i]`` stream: a
    structure's draw does not change when data are appended after it."""
    return np.array([np.random.default_rng([*seed, i]).random() for i in range(n)])


def held_out(n: int, seed: int, fraction: float, keep=()) -> np.ndarray:
    """Indices of the validation structures among ``n``, drawn per index (structure ``i`` is
    held out when its :func:`index_draws` number is below ``fraction``), so that a structure
    held out once stays held out when the data grow by appending; the indices in ``keep``
    are never held out. At least one structure is left for training."""
    chosen = np.flatnonzero(index_draws(n, seed) < fraction)
    chosen = np.setdiff1d(chosen, np.asarray(list(keep), dtype=int))
    return chosen if len(chosen) < n else chosen[:0]


def fit_self_energies(images: list[Atoms], energies: np.ndarray, symbols: list[str]) -> dict:
    """Per-element energies (eV) from a least-squares fit of the energies to element counts.

    For a single molecule the counts are the same in every structure and the fit is
    rank-deficient; the minimum-norm solution still reproduces the mean energy.
    """
    counts = np.array(
        [[np.sum(a.numbers == chemical_symbols.index(s)) for s in symbols] for a in images]
    )
    solution = np.linalg.lstsq(counts.astype(float), energies, rcond=None)[0]
    return dict(zip(symbols, solution.tolist(), strict=True))


class WeightAverage:
    """An exponential moving average of a module's parameters, updated after each optimiser
    step: ``avg <- d·avg + (1 - d)·w``, with ``d = decay`` (or, with ``ramp_up``, ``min(decay,
    (1 + t)/(10 + t))`` at step ``t``, so that a fit from random weights is not averaged with
    them). ``decay = 0`` keeps no average: the module's own weights are used."""

    def __init__(self, module, decay: float, ramp_up: bool = True):
        self.params = [p for p in module.parameters()]
        self.decay, self.ramp_up, self.steps = float(decay), ramp_up, 0
        self.average = [p.detach().clone() for p in self.params] if self.decay > 0 else None

    def update(self) -> None:
        if self.average is None:
            return
        d = self.decay
        if self.ramp_up:
            d = min(d, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        torch()._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - d)

    @contextlib.contextmanager
    def in_place(self):
        """The averaged weights in the module for the block (swapped in and out, no copy)."""
        if self.average is None:
            yield
            return
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def _swap(self):
        for index, p in enumerate(self.params):
            p.data, self.average[index] = self.average[index], p.data


class TorchPotential(TrainableModel):
    """Base of the neural-network potentials: a trainable ASE calculator on torch.

    Parameters common to all (subclasses add their architecture's):

    device : str
        ``"auto"`` (GPU when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    dtype : {"float32", "float64"}
        Precision of the network and of the inputs.
    seed : int
        Seeds weight initialisation, the validation split and the batch order: the same seed,
        data and settings give the same model on the same device.
    threads : int, optional
        torch intra-op threads while training and predicting (default: torch's own setting).
    max_epochs, batch_size, learning_rate, lr_factor, lr_patience, min_lr, early_stopping,
    validation_fraction, energy_weight, force_weight :
        Training settings. Adam at ``learning_rate``; the rate is multiplied by ``lr_factor``
        after ``lr_patience`` epochs without a better validation loss; training stops at
        ``max_epochs``, when the rate falls below ``min_lr``, or after ``early_stopping``
        epochs without improvement; the (averaged, see ``ema_decay``) weights of the best
        validation loss are kept.
        Loss = ``energy_weight``·mean((ΔE/N_atoms)²) + ``force_weight``·mean(ΔF²) in eV and
        eV/Å (the force term only when training on forces).
    ema_decay : float
        The weights validated, kept and used are an exponential moving average of Adam's
        iterates, updated after every step with this decay (0.99: about the last 100 steps;
        ramped up over the first steps of a fit from scratch; 0 switches the average off).
        Adam's own weights jitter from step to step; their average does not, so one epoch's
        validation loss is comparable with another's and with a warm start's weights.
    new_repeats : int
        In a warm start, the structures appended since the last fit (from :attr:`n_fitted`
        on) are visited this many times per epoch (default 1: once, like the others).
    """

    implemented_properties = ["energy", "forces"]
    #: what :meth:`save` writes, so that callers can name files
    file_extension = ".pt"
    model_name = "model"
    default_dtype = "float32"

    @classmethod
    def extra_keywords(cls):
        return tuple(TRAINING_DEFAULTS)

    def __init__(
        self,
        device: str = "auto",
        dtype: str | None = None,
        seed: int = 0,
        threads: int | None = None,
        **kwargs,
    ):
        training = {k: kwargs.pop(k) for k in list(kwargs) if k in TRAINING_DEFAULTS}
        super().__init__(**kwargs)
        self.device_name = device
        self.device = resolve_device(device)
        self.dtype_name = dtype or self.default_dtype
        self.dtype = resolve_dtype(self.dtype_name)
        self.seed = int(seed)
        self.threads = threads
        self.training = {**TRAINING_DEFAULTS, **training}
        self.module = None
        self.symbols: list[str] | None = None
        self.history: list[dict] = []
        self.validation_rmse: float | None = None
        self.validation_force_rmse: float | None = None
        #: how many structures the current weights were fitted to (a warm start takes the
        #: structures from this index on as new)
        self.n_fitted: int | None = None

    # -- subclass interface ----------------------------------------------------------
    def _build(self, symbols: list[str], self_energies: dict, items: list) -> None:
        """Create ``self.module`` for these elements (``self_energies`` in eV per atom)."""
        raise NotImplementedError

    def _prepare(self, images, energies=None, forces=None) -> list:
        """One model input per structure, with its references when given (done once)."""
        raise NotImplementedError

    def _collate(self, items: list):
        """``(batch, energy_ref, force_ref, n_atoms)``: references as tensors or None."""
        raise NotImplementedError

    def _evaluate(self, batch, forces: bool, training: bool = False):
        """Energies (P,) in eV and forces of the real atoms (n_atoms_total, 3) in eV/Å."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self.module is not None

    @contextlib.contextmanager
    def _torch_settings(self):
        th = torch()
        old_threads, old_dtype = th.get_num_threads(), th.get_default_dtype()
        if self.threads:
            th.set_num_threads(int(self.threads))
        th.set_default_dtype(self.dtype)  # mace builds its tensors in the default dtype
        try:
            yield th
        finally:
            th.set_num_threads(old_threads)
            th.set_default_dtype(old_dtype)

    def check_elements(self, images) -> None:
        """Refuse structures with elements the model has no network for, or bad coordinates."""
        known = set(self.symbols)
        for index, atoms in enumerate(images):
            check_atoms(atoms)
            unknown = sorted(set(atoms.get_chemical_symbols()) - known)
            if unknown:
                raise ValueError(
                    f"structure {index} ({atoms.get_chemical_formula()}) contains "
                    f"{', '.join(unknown)}, but this {self.model_name} model knows only "
                    f"{', '.join(self.symbols)}"
                )

    def train(
        self,
        images: list[Atoms],
        energies: bool = True,
        forces: bool = True,
        progress: bool | None = None,
        warm_start: bool = False,
        **settings,
    ) -> TorchPotential:
        """Fit the network to ``images`` carrying reference results: from scratch, or with
        ``warm_start`` from its current weights.

        Parameters
        ----------
        images : list of Atoms
            Structures with ``get_potential_energy()`` (eV) and, for ``forces=True``,
            ``get_forces()`` (eV/Å), e.g. through a ``SinglePointCalculator``.
        energies : bool
            Energies are always learned; ``False`` is refused.
        forces : bool
            Also learn forces; ``False`` trains on energies only (the auxiliary model of
            physics-informed uncertainty).
        progress : bool, optional
            Show a progress bar over epochs (default: when interactive).
        warm_start : bool
            Continue from the weights this model has (trained or loaded; MLatom's
            ``reuse_model``): the element energies are kept, the learning rate starts
            where the previous fit ended (at least 10 × ``min_lr``), ramped up over the first
            epoch, and the best epoch of this fit is kept; the weights it started from only
            when that epoch's validation loss is above :data:`WARM_KEEP` (1.25) times theirs
            (a fit thrown off), or with ``max_epochs=0``. The structures from index
            :attr:`n_fitted` on (appended since the weights were fitted) are new: the epochs
            are judged by the mean of the held-out loss over the old structures and that over
            the new ones, so that an iteration's hundred new structures are not outvoted by
            thousands the weights already fit (judged over all of them, the warm fits of a
            Diels-Alder learning run kept their epoch 1-3 and did not learn the new labels).
            The epochs are judged by their averaged weights (``ema_decay``): in a glycine
            learning run at iteration 10, Adam's own weights were at best 1.35 times the
            starting weights' validation loss, their average 0.93 times. The validation split
            is drawn per structure index (:func:`held_out`), from scratch or not, so
            structures held out before stay held out when the data grow by appending. The
            active learner uses it with ``ActiveLearner(warm_start=True)``. A structure
            with ``atoms.info["always_train"]`` true is never held out (the learner marks
            so the few it labelled on the model's own relaxation paths).
        **settings
            Override training settings for this call (``max_epochs=...``, ...).

        After training, :attr:`validation_rmse` (eV) and, with forces,
        :attr:`validation_force_rmse` (eV/Å) are the errors on the held-out split and
        :attr:`history` holds one record per epoch, and :attr:`n_fitted` the number of
        structures fitted.
        """
        if not energies:
            raise ValueError(f"{self.model_name} always learns energies; energies=False is refused")
        unknown = set(settings) - set(TRAINING_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown training settings {sorted(unknown)}")
        cfg = {**self.training, **settings}
        decay = cfg["ema_decay"]
        if not (isinstance(decay, (int, float)) and 0.0 <= decay < 1.0):
            raise ValueError(f"ema_decay must be a number in [0, 1), got {decay!r}")
        check_int("new_repeats", cfg["new_repeats"], minimum=1)
        images = list(images)
        if len(images) < 2:
            raise ValueError(f"{self.model_name} needs at least 2 training structures")
        for atoms in images:
            check_atoms(atoms)
        if warm_start:
            if not self.is_trained:
                raise NotTrainedError(self, "continue its training (warm_start=True)")
            self.check_elements(images)
        energy = np.array([a.get_potential_energy() for a in images], dtype=float)
        force = [np.asarray(a.get_forces(), float) for a in images] if forces else None
        if not np.all(np.isfinite(energy)) or (
            force and not all(np.isfinite(f).all() for f in force)
        ):
            raise ValueError("training energies/forces contain NaN or infinite values")

        symbols = sorted(
            {s for a in images for s in a.get_chemical_symbols()}, key=chemical_symbols.index
        )
        rng = np.random.default_rng(self.seed)
        # drawn per structure index: a structure held out once stays held out as the data
        # grow by appending, so that a warm start is validated on data it never trained on
        keep = [i for i, atoms in enumerate(images) if atoms.info.get(ALWAYS_TRAIN)]
        val_idx = held_out(len(images), self.seed, cfg["validation_fraction"], keep)
        train_idx = np.setdiff1d(np.arange(len(images)), val_idx)
        if warm_start:
            symbols = self.symbols
            if self.history:
                previous = self.history[-1]["learning_rate"]
                cfg["learning_rate"] = max(min(previous, cfg["learning_rate"]), 10 * cfg["min_lr"])
        self.symbols = symbols
        with self._torch_settings() as th, th.random.fork_rng(devices=[]):
            th.manual_seed(self.seed)
            items = self._prepare(images, energy, force)
            if not warm_start:
                self._build(
                    symbols,
                    fit_self_energies([images[i] for i in train_idx], energy[train_idx], symbols),
                    [items[i] for i in train_idx],
                )
            self.history = []
            new_from = None
            if warm_start and self.n_fitted is not None and self.n_fitted < len(images):
                new_from = self.n_fitted
            self._fit(items, train_idx, val_idx, cfg, rng, progress, new_from, warm_start)
        self.n_fitted = len(images)
        self.results = {}
        return self

    def _chunks(self, items, indices, batch_size):
        for start in range(0, len(indices), batch_size):
            yield self._collate([items[i] for i in indices[start : start + batch_size]])

    def _loss(self, batch, e_ref, f_ref, n_atoms, cfg, training):
        e_pred, f_pred = self._evaluate(batch, forces=f_ref is not None, training=training)
        loss = cfg["energy_weight"] * (((e_pred - e_ref) / n_atoms) ** 2).mean()
        if f_ref is not None:
            loss = loss + cfg["force_weight"] * ((f_pred - f_ref) ** 2).mean()
        return loss, e_pred.detach(), None if f_pred is None else f_pred.detach()

    def _sums(self, items, indices, cfg) -> np.ndarray:
        """Summed loss, squared energy errors, squared force errors and force components over
        ``indices``, and their number."""
        e_sq = f_sq = loss_sum = 0.0
        f_count = 0
        for batch, e_ref, f_ref, n_atoms in self._chunks(items, indices, 256):
            loss, e_pred, f_pred = self._loss(batch, e_ref, f_ref, n_atoms, cfg, training=False)
            loss_sum += float(loss.detach()) * len(e_ref)
            e_sq += float(((e_pred - e_ref) ** 2).sum())
            if f_ref is not None:
                f_sq += float(((f_pred - f_ref) ** 2).sum())
                f_count += f_ref.numel()
        return np.array([loss_sum, e_sq, f_sq, f_count, len(indices)], float)

    @staticmethod
    def _rmses(sums):
        loss_sum, e_sq, f_sq, f_count, n = (float(x) for x in sums)
        return loss_sum / n, math.sqrt(e_sq / n), math.sqrt(f_sq / f_count) if f_count else None

    def _errors(self, items, indices, cfg):
        """Loss, energy RMSE (eV) and force RMSE (eV/Å) over ``indices``."""
        return self._rmses(self._sums(items, indices, cfg))

    def _judge(self, items, monitor, new_from, cfg):
        """Selection loss, energy RMSE (eV) and force RMSE (eV/Å) over ``monitor``. With
        ``new_from``, the loss is the mean of the losses over the structures before and from
        that index, so that the structures new to a warm start count as much as all the old
        ones together (the errors stay those over all of ``monitor``)."""
        is_new = monitor >= (len(items) if new_from is None else new_from)
        if not is_new.any() or is_new.all():
            return self._errors(items, monitor, cfg)
        old = self._sums(items, monitor[~is_new], cfg)
        new = self._sums(items, monitor[is_new], cfg)
        _, e_rmse, f_rmse = self._rmses(old + new)
        return float(0.5 * (old[0] / old[4] + new[0] / new[4])), e_rmse, f_rmse

    def _fit(self, items, train_idx, val_idx, cfg, rng, progress, new_from=None, warm_start=False):
        th = torch()
        optimizer = th.optim.Adam(self.module.parameters(), lr=cfg["learning_rate"])
        scheduler = th.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=cfg["lr_factor"], patience=cfg["lr_patience"]
        )
        monitor = val_idx if len(val_idx) else train_idx
        average = WeightAverage(self.module, cfg["ema_decay"], ramp_up=not warm_start)
        best_loss, best_state, best_epoch = math.inf, None, 0
        ramp = 0
        start = None
        if warm_start:
            # a fresh Adam's first steps (each parameter moved by about the rate at once) are
            # ramped up over an epoch instead of kicking the trained network away
            ramp = max(1, math.ceil(len(train_idx) / cfg["batch_size"]))
            self.module.eval()
            start = (
                *self._judge(items, monitor, new_from, cfg),
                copy.deepcopy(self.module.state_dict()),
            )
        # the structures new to a warm start, visited new_repeats times per epoch
        pool = None
        if new_from is not None and cfg["new_repeats"] > 1:
            fresh = train_idx[train_idx >= new_from]
            pool = np.concatenate([train_idx] + [fresh] * (cfg["new_repeats"] - 1))
        step = 0
        bar = tqdm(
            range(cfg["max_epochs"]),
            desc=f"training {self.model_name}",
            disable=None if progress is None else not progress,
            leave=False,
        )
        for epoch in bar:
            self.module.train()
            train_loss = 0.0
            shuffled = train_idx[rng.permutation(len(train_idx))]
            if pool is not None:
                shuffled = pool[rng.permutation(len(pool))]
            for batch, e_ref, f_ref, n_atoms in self._chunks(items, shuffled, cfg["batch_size"]):
                if step < ramp:
                    optimizer.param_groups[0]["lr"] = cfg["learning_rate"] * (step + 1) / ramp
                step += 1
                loss, _, _ = self._loss(batch, e_ref, f_ref, n_atoms, cfg, training=True)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                average.update()
                train_loss += float(loss.detach()) * len(e_ref)
            self.module.eval()
            with average.in_place():
                val_loss, e_rmse, f_rmse = self._judge(items, monitor, new_from, cfg)
                if val_loss < best_loss or best_state is None:
                    best_loss, best_epoch = val_loss, epoch
                    best_state = copy.deepcopy(self.module.state_dict())
                    self.validation_rmse, self.validation_force_rmse = e_rmse, f_rmse
            lr = optimizer.param_groups[0]["lr"]
            self.history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": train_loss / len(shuffled),
                    "validation_loss": val_loss,
                    "energy_rmse": e_rmse,
                    "force_rmse": f_rmse,
                    "learning_rate": lr,
                }
            )
            bar.set_postfix(E_rmse=f"{e_rmse:.4f} eV", lr=f"{lr:.1e}")
            scheduler.step(val_loss)
            if lr < cfg["min_lr"] or epoch - best_epoch >= cfg["early_stopping"]:
                break
        bar.close()
        if start is not None and (best_state is None or best_loss > WARM_KEEP * start[0]):
            # no epochs, or a fit thrown off: the weights it started from. Only then: they were
            # chosen on these same validation structures, so their loss is biased low, and
            # as a plain candidate they kept the new data out (the Diels-Alder run's iteration
            # 4 returned iteration 3's weights after 151 epochs within 8 % of their loss)
            if best_state is not None:
                log.info(
                    "warm start: the best epoch's validation loss %.3g is above %g x the "
                    "starting weights' %.3g; the starting weights are kept",
                    best_loss,
                    WARM_KEEP,
                    start[0],
                )
            _, self.validation_rmse, self.validation_force_rmse, best_state = start
        if best_state is None:  # max_epochs=0: the freshly initialised network, as built
            _, self.validation_rmse, self.validation_force_rmse = self._errors(items, monitor, cfg)
        else:
            self.module.load_state_dict(best_state)
        self.module.eval()
        if not len(val_idx):  # errors on the training data are no validation errors
            self.validation_rmse = self.validation_force_rmse = None

    # -- persistence helpers -----------------------------------------------------------
    def _metadata(self) -> dict:
        """Settings and learned bookkeeping that :meth:`save` stores beside the weights."""
        return {
            "format": f"ase-al {self.model_name} 1",
            "settings": {
                "dtype": self.dtype_name,
                "seed": self.seed,
                "threads": self.threads,
                **self.training,
            },
            "symbols": self.symbols,
            "history": self.history,
            "validation_rmse": self.validation_rmse,
            "validation_force_rmse": self.validation_force_rmse,
            "n_fitted": self.n_fitted,
        }

    def _restore_metadata(self, meta: dict) -> None:
        self.symbols = list(meta["symbols"])
        self.history = list(meta.get("history", []))
        self.validation_rmse = meta.get("validation_rmse")
        self.validation_force_rmse = meta.get("validation_force_rmse")
        self.n_fitted = meta.get("n_fitted")

    # -- prediction ------------------------------------------------------------------
    def predict(self, images: list[Atoms], forces: bool = True, batch_size: int = 256) -> dict:
        """Energies (P,) in eV and, if asked, forces in eV/Å for a batch of structures.

        ``forces`` is an array (P, N, 3) when all structures have N atoms, else a list of
        (N_i, 3) arrays.
        """
        if not self.is_trained:
            raise NotTrainedError(self)
        images = list(images)
        self.check_elements(images)
        energies, all_forces = [], []
        with self._torch_settings():
            items = self._prepare(images)
            for batch, _, _, _ in self._chunks(items, np.arange(len(items)), batch_size):
                e, f = self._evaluate(batch, forces=forces, training=False)
                energies.append(e.detach().cpu().numpy().astype(float))
                if forces:
                    all_forces.append(f.detach().cpu().numpy().astype(float))
        result = {"energy": np.concatenate(energies)}
        if forces:
            flat = np.concatenate(all_forces)
            sizes = [len(a) for a in images]
            if len(set(sizes)) == 1:
                result["forces"] = flat.reshape(len(images), sizes[0], 3)
            else:
                result["forces"] = np.split(flat, np.cumsum(sizes)[:-1])
        return result

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        result = self.predict([self.atoms], forces=True)
        self.results = {"energy": float(result["energy"][0]), "forces": result["forces"][0]}
