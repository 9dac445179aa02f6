"""ANI neural-network potentials through torchani: trainable from scratch, or pretrained files.

The model is torchani's own: its AEV computer (ANI-1x or ANI-2x radial and angular terms,
cosine cutoff), one atomic network per element (``ANINetworks``) and per-element self
energies, assembled by ``torchani.arch.Assembler``. torchani's models work in Hartree; this
calculator converts at the boundary so that everything outside is eV and eV/Å.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase.calculators.calculator import all_changes
from ase.data import chemical_symbols
from ase.units import Hartree

from ase_al.calculators._torch import TorchPotential, torch
from ase_al.errors import NotTrainedError, require
from ase_al.files import atomic_write

#: hidden layers of ANI-1x's networks, per element; other elements use the last entry
ANI1X_LAYERS = {"H": (160, 128, 96), "C": (144, 112, 96), "N": (128, 112, 96), "O": (128, 112, 96)}
DEFAULT_LAYERS = (128, 112, 96)

#: upstream pretrained parameter files, by method name
PRETRAINED = {
    "ANI-1x": "ani1x_state_dict.pt",
    "ANI-2x": "ani2x_state_dict.pt",
    "ANI-1ccx": "ani1ccx_state_dict.pt",
}
MODEL_ZOO = "https://github.com/roitberg-group/torchani_model_zoo/releases/tag/v0.1"


def torchani():
    torch()
    # CUDA extensions are optional speed-ups (cuAEV); their absence is not worth a warning
    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    return require("torchani", "ani")


class ANI(TorchPotential):
    """An ANI-type potential (torchani) as a trainable ASE calculator.

    Parameters
    ----------
    aev : {"ani1x", "ani2x"}
        Radial and angular AEV terms of ANI-1x (5.2 Å / 3.5 Å cutoffs) or ANI-2x (5.1 Å).
    hidden_layers : dict or sequence of int, optional
        Hidden-layer widths: one sequence for all elements, or ``{"H": (...), ...}``.
        Default: ANI-1x's widths (H 160-128-96, C 144-112-96, N/O 128-112-96, others 128-112-96).
    activation : {"celu", "gelu"}
        CELU(α=0.1) as in ANI-1x, or GELU.
    device, dtype, seed, threads, max_epochs, ... :
        See :class:`~ase_al.calculators._torch.TorchPotential`. Defaults here: float32,
        learning rate 3e-3, force weight 0.1.

    Notes
    -----
    Results: ``energy`` (eV), ``forces`` (eV/Å) and, for a pretrained ensemble (e.g. ANI-1x's
    8 networks), ``energy_uncertainty`` (eV): the standard deviation over its members.
    """

    model_name = "ANI"
    implemented_properties = ["energy", "forces", "energy_uncertainty"]

    def __init__(
        self,
        aev: str = "ani1x",
        hidden_layers=None,
        activation: str = "celu",
        **kwargs,
    ):
        kwargs.setdefault("learning_rate", 3e-3)
        kwargs.setdefault("force_weight", 0.1)
        super().__init__(**kwargs)
        if aev not in ("ani1x", "ani2x"):
            raise ValueError(f"aev must be 'ani1x' or 'ani2x', got {aev!r}")
        if activation not in ("celu", "gelu"):
            raise ValueError(f"activation must be 'celu' or 'gelu', got {activation!r}")
        self.aev = aev
        self.hidden_layers = hidden_layers
        self.activation = activation
        self._architecture: dict | None = None

    # -- network ---------------------------------------------------------------------
    def _layers(self, symbols) -> dict:
        if self.hidden_layers is None:
            return {s: ANI1X_LAYERS.get(s, DEFAULT_LAYERS) for s in symbols}
        if isinstance(self.hidden_layers, dict):
            missing = [s for s in symbols if s not in self.hidden_layers]
            if missing:
                raise ValueError(f"hidden_layers has no entry for {', '.join(missing)}")
            return {s: tuple(int(n) for n in self.hidden_layers[s]) for s in symbols}
        return {s: tuple(int(n) for n in self.hidden_layers) for s in symbols}

    @staticmethod
    def _assemble(architecture: dict, self_energies_hartree: dict, members: int = 1):
        ta = torchani()
        asm = ta.arch.Assembler(periodic_table_index=True)
        asm.set_symbols(architecture["symbols"])
        asm.set_global_cutoff_fn("cosine")
        asm.set_aev_computer(radial=architecture["aev"], angular=architecture["aev"])
        asm.set_neighborlist("all_pairs")
        if architecture.get("layers") is None:  # an upstream ANI-1x/2x architecture
            asm.set_atomic_networks(ctor=architecture["aev"])
        else:
            asm.set_atomic_networks(
                cls=ta.nn.ANINetworks,
                ctor="build",
                kwargs={
                    "dims": {s: tuple(v) for s, v in architecture["layers"].items()},
                    "activation": architecture["activation"],
                    "bias": True,
                },
            )
        asm.set_self_energies(self_energies_hartree)
        return asm.assemble(members)

    def _build(self, symbols, self_energies, items) -> None:
        self._architecture = {
            "symbols": list(symbols),
            "aev": self.aev,
            "layers": {s: list(v) for s, v in self._layers(symbols).items()},
            "activation": self.activation,
        }
        model = self._assemble(
            self._architecture, {s: e / Hartree for s, e in self_energies.items()}
        )
        self.module = model.to(device=self.device, dtype=self.dtype)

    # -- data ------------------------------------------------------------------------
    def _prepare(self, images, energies=None, forces=None) -> list:
        th = torch()
        items = []
        for k, atoms in enumerate(images):
            items.append(
                (
                    th.as_tensor(atoms.numbers, dtype=th.long),
                    th.as_tensor(atoms.positions, dtype=self.dtype),
                    None if energies is None else float(energies[k]),
                    None if forces is None else th.as_tensor(forces[k], dtype=self.dtype),
                )
            )
        return items

    def _collate(self, items):
        th = torch()
        pad = th.nn.utils.rnn.pad_sequence
        species = pad([it[0] for it in items], batch_first=True, padding_value=-1)
        coords = pad([it[1] for it in items], batch_first=True, padding_value=0.0)
        n_atoms = th.tensor([len(it[0]) for it in items], dtype=self.dtype, device=self.device)
        e_ref = f_ref = None
        if items[0][2] is not None:
            e_ref = th.tensor([it[2] for it in items], dtype=self.dtype, device=self.device)
        if items[0][3] is not None:
            f_ref = th.cat([it[3] for it in items]).to(self.device)
        return (species.to(self.device), coords.to(self.device)), e_ref, f_ref, n_atoms

    def _evaluate(self, batch, forces, training=False, members=False):
        th = torch()
        species, coords = batch
        coords = coords.detach().requires_grad_(forces)
        with th.set_grad_enabled(forces or training):
            energies = self.module((species, coords), ensemble_values=members).energies
            energies = energies * Hartree
            if members:
                return energies, None
            force = None
            if forces:
                (grad,) = th.autograd.grad(energies.sum(), coords, create_graph=training)
                force = -grad[species >= 0]
        return energies, force

    @property
    def n_members(self) -> int:
        """Networks in the model (8 for the pretrained ANI-1x/2x/1ccx ensembles)."""
        networks = self.module.potentials["nnp"].neural_networks
        return len(networks) if hasattr(networks, "__len__") else 1

    def predict(self, images, forces=True, batch_size=256, uncertainty=False) -> dict:
        """Energies (P,) in eV and forces in eV/Å; with ``uncertainty`` (ensembles only) also
        ``energy_uncertainty`` (P,) in eV, the members' standard deviation."""
        result = super().predict(images, forces=forces, batch_size=batch_size)
        if uncertainty:
            if self.n_members < 2:
                raise ValueError("energy_uncertainty needs an ensemble of ANI networks")
            members = []
            with self._torch_settings():
                items = self._prepare(list(images))
                for batch, _, _, _ in self._chunks(items, np.arange(len(items)), batch_size):
                    values, _ = self._evaluate(batch, forces=False, members=True)
                    members.append(values.detach().cpu().numpy())
            result["energy_uncertainty"] = np.concatenate(members, axis=1).std(axis=0)
        return result

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if "energy_uncertainty" in properties:
            result = self.predict([self.atoms], forces=False, uncertainty=True)
            self.results["energy_uncertainty"] = float(result["energy_uncertainty"][0])

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` (a torch file: architecture, settings and weights)."""
        if not self.is_trained:
            raise NotTrainedError(self, "save it")
        th = torch()
        payload = self._metadata()
        payload["architecture"] = self._architecture
        payload["members"] = self.n_members
        payload["state_dict"] = {k: v.cpu() for k, v in self.module.state_dict().items()}
        with atomic_write(path) as partial:
            th.save(payload, partial)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", dtype: str | None = None, **kwargs):
        """An ANI model from a local file.

        Accepted: a file written by :meth:`save`; a torchani state dict of an ANI-1x-, ANI-1ccx-
        or ANI-2x-type model (torchani's ``ani1x_state_dict.pt``, ``ani2x_state_dict.pt``,
        ``ani1ccx_state_dict.pt``, or ``torch.save(model.state_dict())`` of such a model); a
        NeuroChem ``.info`` file (with its parameter directories beside it). Nothing is
        downloaded.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"ANI model file {path} not found. Pretrained ANI parameters are not downloaded "
                f"by ase-al: get e.g. ani1x_state_dict.pt from {MODEL_ZOO} and pass its path."
            )
        th = torch()
        ta = torchani()
        if path.suffix == ".info":
            module = ta.neurochem.load_model_from_info_file(path)
            architecture = {"symbols": list(module.symbols), "aev": "neurochem", "layers": None}
            return cls._wrap(module, architecture, device, dtype, kwargs)
        try:
            payload = th.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} is not a readable torch file: {err}") from None
        if not isinstance(payload, dict):
            raise ValueError(f"{path} holds no ANI model or state dict")
        if payload.get("format") == "ase-al ANI 1":
            arch = payload["architecture"]
            settings = {**payload["settings"], **kwargs}
            if dtype is not None:
                settings["dtype"] = dtype
            model = cls(
                aev=arch["aev"],
                hidden_layers=arch["layers"],
                activation=arch["activation"],
                device=device,
                **settings,
            )
            with model._torch_settings():  # built in the model's dtype: no float32 detour
                module = cls._assemble(arch, {s: 0.0 for s in arch["symbols"]}, payload["members"])
                module.load_state_dict(payload["state_dict"])
            model.module = module.to(device=model.device, dtype=model.dtype).eval()
            model._architecture = arch
            model._restore_metadata(payload)
            return model
        return cls._from_state_dict(path, payload, device, dtype, kwargs)

    @classmethod
    def _from_state_dict(cls, path, state, device, dtype, kwargs):
        if "atomic_numbers" not in state:
            raise ValueError(f"{path} is neither an ase-al ANI file nor a torchani state dict")
        symbols = [chemical_symbols[int(z)] for z in state["atomic_numbers"]]
        aev = {("H", "C", "N", "O"): "ani1x", ("H", "C", "N", "O", "S", "F", "Cl"): "ani2x"}
        preset = aev.get(tuple(symbols))
        if preset is None:
            raise ValueError(
                f"{path}: a torchani state dict for elements {symbols}; only the ANI-1x/1ccx "
                "(H, C, N, O) and ANI-2x (H, C, N, O, S, F, Cl) architectures are known"
            )
        prefix = "potentials.nnp.neural_networks.members."
        indices = {int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)}
        members = max(indices) + 1 if indices else 1
        architecture = {"symbols": symbols, "aev": preset, "layers": None}
        module = cls._assemble(architecture, {s: 0.0 for s in symbols}, members)
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(
                f"{path} does not match torchani's {preset} architecture: {err}"
            ) from None
        return cls._wrap(module, architecture, device, dtype, kwargs)

    @classmethod
    def _wrap(cls, module, architecture, device, dtype, kwargs):
        model = cls(
            aev=architecture["aev"] if architecture["aev"] != "neurochem" else "ani1x",
            device=device,
            dtype=dtype,
            **kwargs,
        )
        model.module = module.to(device=model.device, dtype=model.dtype).eval()
        model.module.requires_grad_(False)
        model._architecture = architecture
        model.symbols = list(architecture["symbols"])
        return model


def pretrained(name: str, model_file: str | Path | None = None, **kwargs) -> ANI:
    """The pretrained ``"ANI-1x"``, ``"ANI-2x"`` or ``"ANI-1ccx"`` from a local parameter file.

    ``model_file`` defaults to torchani's own cache,
    ``$TORCHANI_DATA_DIR/StateDicts/<name>_state_dict.pt`` (``~/.local/share/Torchani/...``).
    """
    filename = PRETRAINED[name]
    if model_file is None:
        root = os.getenv("TORCHANI_DATA_DIR") or Path.home() / ".local" / "share" / "Torchani"
        model_file = Path(root) / "StateDicts" / filename
        if not Path(model_file).is_file():
            raise FileNotFoundError(
                f"{name} needs its parameter file {filename}, which ase-al does not download. "
                f"Get it from {MODEL_ZOO} and either pass model_file=PATH or put it at "
                f"{model_file}."
            )
    return ANI.load(model_file, **kwargs)


__all__ = ["ANI", "PRETRAINED", "pretrained"]
