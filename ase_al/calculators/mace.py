"""MACE potentials through mace-torch: trainable from scratch, or a MACE ``.model`` file.

The network is mace-torch's ``ScaleShiftMACE``, the structures become its ``AtomicData``
graphs through its own ``config_from_atoms``/``AtomicData.from_config``, and batches are its
``torch_geometric`` batches. What ase-al adds is the fitting loop shared with ANI (early
stopping, plateau schedule, progress bar) and the calculator contract. A model saved here is a
regular mace-torch model file: ``mace.calculators.MACECalculator(model_paths=...)`` reads it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import warnings
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from ase_al.calculators._torch import TorchPotential, torch
from ase_al.errors import NotTrainedError, require
from ase_al.files import atomic_write

#: small, fast settings for one molecule on a CPU; every ScaleShiftMACE argument can be given
MACE_DEFAULTS = {
    "r_max": 5.0,
    "num_bessel": 8,
    "num_polynomial_cutoff": 5,
    "max_ell": 2,
    "num_interactions": 2,
    "hidden_irreps": "16x0e + 16x1o",
    "MLP_irreps": "16x0e",
    "correlation": 2,
    "radial_MLP": [32, 32, 32],
    "interaction": "RealAgnosticResidualInteractionBlock",
    "interaction_first": "RealAgnosticResidualInteractionBlock",
    "gate": "silu",
}


_UNSAFE_LOAD = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@functools.cache
def mace_modules():
    """mace's modules, e3nn's o3 and mace's torch_geometric, imported once (the import fixes
    below then stay off the training loop, which asks for them every batch)."""
    th = torch()
    # e3nn 0.4.4 (pinned by mace-torch) loads its constants with torch.load, which torch >= 2.6
    # restricts to weights; its file also holds slice objects, harmless to allow.
    th.serialization.add_safe_globals([slice])
    # importing mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD for the whole process (every later
    # torch.load would unpickle arbitrary objects) and prints a note about cuequivariance:
    # neither should leak into the user's session.
    before = os.environ.get(_UNSAFE_LOAD)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            require("mace", "mace")
            import mace.data
            import mace.modules
            import mace.tools
            from e3nn import o3
            from mace.tools import torch_geometric
    finally:
        if before is None:
            os.environ.pop(_UNSAFE_LOAD, None)
        else:
            os.environ[_UNSAFE_LOAD] = before
    return mace, o3, torch_geometric


class MACE(TorchPotential):
    """A MACE potential (mace-torch) as a trainable ASE calculator.

    Parameters
    ----------
    **kwargs
        Any ``mace.modules.ScaleShiftMACE`` argument (irreps as strings, ``interaction`` and
        ``interaction_first`` as mace class names, ``gate`` as ``"silu"``/``"tanh"``/...),
        over :data:`MACE_DEFAULTS` (r_max 5 Å, 2 interactions, 16x0e+16x1o, max_ell 2,
        correlation 2); and the common ``device``, ``dtype`` (default float64), ``seed``,
        ``threads`` and training settings of
        :class:`~ase_al.calculators._torch.TorchPotential` (learning rate default 0.01).

    Notes
    -----
    Results: ``energy`` (eV), ``forces`` (eV/Å).
    """

    model_name = "MACE"
    file_extension = ".model"
    default_dtype = "float64"

    @classmethod
    def extra_keywords(cls):
        return (*super().extra_keywords(), *_mace_arguments())

    def __init__(self, **kwargs):
        architecture = {k: kwargs.pop(k) for k in list(kwargs) if k in _mace_arguments()}
        kwargs.setdefault("learning_rate", 1e-2)
        super().__init__(**kwargs)
        self.architecture = {**MACE_DEFAULTS, **architecture}

    def _build(self, symbols, self_energies, items) -> None:
        mace, o3, _ = mace_modules()
        arch = dict(self.architecture)
        z_table = [chemical_symbols.index(s) for s in symbols]
        # mace's own statistics: mean neighbour count and RMS force as the interaction scale
        neighbours = np.mean([it.edge_index.shape[1] / it.num_nodes for it in items])
        forces = [it.forces for it in items if float(it.forces_weight) > 0]
        scale = float(torch().cat(forces).square().mean().sqrt()) if forces else 1.0
        gates = {
            "silu": torch().nn.functional.silu,
            "tanh": torch().tanh,
            "abs": torch().abs,
            "None": None,
        }
        kwargs = {
            "r_max": float(arch.pop("r_max")),
            "hidden_irreps": o3.Irreps(arch.pop("hidden_irreps")),
            "MLP_irreps": o3.Irreps(arch.pop("MLP_irreps")),
            "interaction_cls": mace.modules.interaction_classes[arch.pop("interaction")],
            "interaction_cls_first": mace.modules.interaction_classes[
                arch.pop("interaction_first")
            ],
            "gate": gates[arch.pop("gate")],
            "radial_MLP": list(arch.pop("radial_MLP")),
            "num_elements": len(z_table),
            "atomic_numbers": z_table,
            "atomic_energies": np.array([self_energies[s] for s in symbols]),
            "avg_num_neighbors": float(neighbours) if neighbours > 0 else 1.0,
            "atomic_inter_scale": scale if scale > 0 else 1.0,
            "atomic_inter_shift": 0.0,
            **arch,
        }
        with warnings.catch_warnings():  # TorchScript notes from e3nn while it builds
            warnings.simplefilter("ignore")
            self.module = mace.modules.ScaleShiftMACE(**kwargs).to(self.device)

    def _prepare(self, images, energies=None, forces=None) -> list:
        mace, _, _ = mace_modules()
        keys = mace.data.KeySpecification(
            info_keys={"energy": "ase_al_energy"}, arrays_keys={"forces": "ase_al_forces"}
        )
        table = mace.tools.AtomicNumberTable([chemical_symbols.index(s) for s in self.symbols])
        r_max = float(self.architecture["r_max"])
        items = []
        for k, atoms in enumerate(images):
            work = atoms.copy()
            work.calc = None
            if energies is not None:
                work.info["ase_al_energy"] = float(energies[k])
            if forces is not None:
                work.arrays["ase_al_forces"] = np.asarray(forces[k], float)
            config = mace.data.config_from_atoms(work, key_specification=keys)
            items.append(mace.data.AtomicData.from_config(config, z_table=table, cutoff=r_max))
        return items

    def _collate(self, items):
        _, _, torch_geometric = mace_modules()
        batch = torch_geometric.Batch.from_data_list(items).to(self.device)
        n_atoms = (batch.ptr[1:] - batch.ptr[:-1]).to(self.dtype)
        has_energy = float(items[0].energy_weight) > 0
        has_forces = float(items[0].forces_weight) > 0
        e_ref = batch.energy if has_energy else None
        f_ref = batch.forces if has_forces else None
        return batch, e_ref, f_ref, n_atoms

    def _evaluate(self, batch, forces, training=False):
        out = self.module(batch.to_dict(), training=training, compute_force=forces)
        return out["energy"], (out["forces"] if forces else None)

    def predict(self, images, forces=True, batch_size=64) -> dict:
        return super().predict(images, forces=forces, batch_size=batch_size)

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write a mace-torch model file (``torch.save`` of the module, as mace-torch does),
        with ase-al's settings attached; mace-torch's own calculator reads it too."""
        if not self.is_trained:
            raise NotTrainedError(self, "save it")
        th = torch()
        meta = self._metadata()
        meta["architecture"] = self.architecture
        self.module.ase_al = meta
        with atomic_write(path) as partial:
            th.save(self.module, partial)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", dtype: str | None = None, **kwargs):
        """A MACE model from a local ``.model`` file (saved by :meth:`save` or by mace-torch).

        A ``.model`` file is a pickled torch module: load only files you trust.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"MACE model file {path} not found. ase-al does not download foundation "
                "models: fetch the .model file yourself and pass its local path."
            )
        mace_modules()
        th = torch()
        try:
            module = th.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise ValueError(f"{path} is not a readable MACE model file: {err}") from None
        if not hasattr(module, "atomic_numbers") or not hasattr(module, "r_max"):
            raise ValueError(f"{path} does not hold a MACE model")
        meta = getattr(module, "ase_al", None)
        settings = dict(meta["settings"]) if meta else {}
        settings.update(kwargs)
        if dtype is not None:
            settings["dtype"] = dtype
        elif not meta:
            settings["dtype"] = "float64" if module.r_max.dtype == th.float64 else "float32"
        architecture = dict(meta["architecture"]) if meta else {"r_max": float(module.r_max)}
        model = cls(device=device, **architecture, **settings)
        model.module = module.to(device=model.device, dtype=model.dtype).eval()
        if meta:
            model._restore_metadata(meta)
        else:
            model.symbols = [chemical_symbols[int(z)] for z in module.atomic_numbers]
        return model


def _mace_arguments() -> set:
    import inspect

    names = set(MACE_DEFAULTS)
    try:
        mace, _, _ = mace_modules()
    except ImportError:
        return names
    for klass in (mace.modules.ScaleShiftMACE, mace.modules.MACE):
        names |= set(inspect.signature(klass.__init__).parameters) - {"self", "kwargs"}
    return names - {"atomic_energies", "atomic_numbers", "num_elements"}
