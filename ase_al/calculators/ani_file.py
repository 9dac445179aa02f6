"""Read ANI-type network files pickled by torchani-era code (MLatom's ``cv*.pt``) without torchani.

MLatom's AIQM2 networks are ``torch.save`` d dictionaries holding torchani 2.2 objects: the
AEV computer (``torchani.aev.AEVComputer``), one ``torch.nn.Sequential`` per element
(``Linear`` layers and an activation; ``network``), the trained weights as a state dict
(``nn``, keys ``"<element>.<layer>.weight"``) and the self energies
(``torchani.utils.EnergyShifter``).
Unpickling them normally would need those classes, i.e. torchani 2.2 and its pins. Here the
pickle is read by :func:`torch.load` with a restricted unpickler: tensors are rebuilt by torch,
the module classes are replaced by :class:`Record` (a plain attribute bag), and any other
global in the file is refused. The records are then read into plain tensors
(:class:`ANIParameters`) and evaluated by :class:`ANIEnsemble`, which implements the ANI
atomic environment vector (AEV) as torchani 2.2 computes it (0.25 radial prefactor, 0.95 in
the angle's arccos, cosine cutoff) in float64.
"""

from __future__ import annotations

import collections
import math
import pickle
import types
from dataclasses import dataclass
from pathlib import Path

from ase_al.calculators._torch import torch

#: module paths whose classes are read as :class:`Record` (attribute bags)
_RECORD_MODULES = ("torch.nn.modules.", "torchani.")

#: globals passed through as themselves
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
}


class Record:
    """Stand-in for a pickled class: keeps the state it was built with as attributes."""

    kind = "?"

    def __setstate__(self, state):
        if isinstance(state, tuple):  # (dict, slots) form
            state = {k: v for part in state if isinstance(part, dict) for k, v in part.items()}
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"Record({self.kind})"


_record_classes: dict[str, type] = {}


def _record_class(module: str, name: str) -> type:
    kind = f"{module}.{name}"
    if kind not in _record_classes:
        _record_classes[kind] = type(name, (Record,), {"kind": kind})
    return _record_classes[kind]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        th = torch()
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
            return getattr(th._utils, name)
        if module == "torch" and name.endswith("Storage"):
            return getattr(th, name)
        if module.startswith(_RECORD_MODULES):
            return _record_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in an ANI network file")


_pickle_module = types.SimpleNamespace(
    Unpickler=_Unpickler, load=pickle.load, __name__="ase_al_ani_pickle"
)


@dataclass
class ANIParameters:
    """One ANI network's parameters as plain tensors (float64, CPU).

    ``aev`` holds ``Rcr``, ``Rca`` (Å) and the tensors ``EtaR``, ``ShfR``, ``EtaA``, ``Zeta``,
    ``ShfA``, ``ShfZ`` in torchani's broadcasting shapes; ``layers[symbol]`` is a list of
    ``(weight, bias, activation)`` with activation ``"gelu"``, ``"celu:<alpha>"`` or ``None``
    (last layer); ``self_energies`` maps symbol to Hartree.
    """

    species: list[str]
    aev: dict
    layers: dict
    self_energies: dict


def _state(record, what: str) -> dict:
    if not isinstance(record, Record):
        raise ValueError(f"ANI network file: {what} is {type(record).__name__}, not a module")
    return record.__dict__


def _activation(record) -> str:
    kind = record.kind.rsplit(".", 1)[-1]
    if kind == "GELU":
        approximate = getattr(record, "approximate", "none")
        if approximate != "none":
            raise ValueError(
                f"ANI network file: GELU(approximate={approximate!r}) is not supported"
            )
        return "gelu"
    if kind == "CELU":
        return f"celu:{float(record.alpha)}"
    raise ValueError(f"ANI network file: unsupported activation {kind}")


def _sequential(record, symbol: str, state: dict | None) -> list:
    """Layers of one element's network: the architecture from the module, the weights from
    the state dict when the file has one (MLatom keeps the trained weights there and the
    modules as first built)."""
    modules = _state(record, f"network {symbol}")["_modules"]
    layers = []
    for key in sorted(modules, key=int):
        module = modules[key]
        kind = module.kind.rsplit(".", 1)[-1]
        if kind == "Linear":
            params = dict(module._parameters)
            if state is not None:
                params = {
                    name: state[f"{symbol}.{key}.{name}"]
                    for name in ("weight", "bias")
                    if f"{symbol}.{key}.{name}" in state
                }
            bias = params.get("bias")
            layers.append(
                [
                    params["weight"].detach().double(),
                    None if bias is None else bias.detach().double(),
                    None,
                ]
            )
        else:
            if not layers or layers[-1][2] is not None:
                raise ValueError(f"ANI network file: {kind} in network {symbol} follows no layer")
            layers[-1][2] = _activation(module)
    return [tuple(layer) for layer in layers]


def read_ani_file(path) -> ANIParameters:
    """Parameters of an ANI network file written by torchani-based code (e.g. MLatom's AIQM2
    ``cv0.pt``), read without importing torchani or MLatom.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file whose layout
    is not an ANI network dictionary (``network``, ``AEV_computer``, ``energy_shifter``,
    ``args['species_order']``).
    """
    th = torch()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ANI network file {path} does not exist")
    try:
        data = th.load(path, map_location="cpu", pickle_module=_pickle_module, weights_only=False)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: {err}") from None
    missing = [k for k in ("network", "AEV_computer", "energy_shifter", "args") if k not in data]
    if missing:
        raise ValueError(f"{path} is not an ANI network file: no {', '.join(missing)}")
    species = list(data["args"]["species_order"])
    aev_state = _state(data["AEV_computer"], "AEV_computer")
    buffers = aev_state["_buffers"]
    aev = {"Rcr": float(aev_state["Rcr"]), "Rca": float(aev_state["Rca"])}
    for name in ("EtaR", "ShfR", "EtaA", "Zeta", "ShfA", "ShfZ"):
        aev[name] = buffers[name].detach().double()
    if int(aev_state["num_species"]) != len(species):
        raise ValueError(
            f"{path}: the AEV has {aev_state['num_species']} species, the file names {len(species)}"
        )
    shifter = _state(data["energy_shifter"], "energy_shifter")
    energies = shifter.get("self_energies")
    if energies is None:
        energies = shifter["_buffers"]["self_energies"]
    energies = th.as_tensor(energies).double().reshape(-1).tolist()
    if shifter.get("fit_intercept"):
        raise ValueError(f"{path}: energy shifters with an intercept are not supported")
    state = data.get("nn")  # trained weights (a state dict), if the file keeps them apart
    if state is not None and not any(k.endswith(".weight") for k in state):
        raise ValueError(f"{path}: its 'nn' entry is not a state dict of the networks")
    layers = {s: _sequential(data["network"][s], s, state) for s in species}
    return ANIParameters(species, aev, layers, dict(zip(species, energies, strict=True)))


class ANIEnsemble:
    """Energies (Hartree) of an ensemble of ANI networks sharing one AEV, with autograd.

    ``members`` are :class:`ANIParameters` with the same species and AEV constants. Calling
    ``energies(numbers, positions)`` (positions a float64 tensor in Å) returns one energy per
    member; self energies are included.
    """

    def __init__(self, members: list[ANIParameters]):
        if not members:
            raise ValueError("an ANI ensemble needs at least one network")
        first = members[0]
        for other in members[1:]:
            if other.species != first.species or any(
                not torch().equal(torch().as_tensor(other.aev[k]), torch().as_tensor(first.aev[k]))
                for k in first.aev
            ):
                raise ValueError("the networks of an ANI ensemble must share species and AEV")
        self.members = members
        self.species = list(first.species)
        self.aev = first.aev
        n = len(self.species)
        self.radial_sublength = first.aev["EtaR"].numel() * first.aev["ShfR"].numel()
        self.angular_sublength = math.prod(
            first.aev[k].numel() for k in ("EtaA", "Zeta", "ShfA", "ShfZ")
        )
        th = torch()
        triu = th.zeros(n, n, dtype=th.long)
        rows, cols = th.triu_indices(n, n)
        triu[rows, cols] = th.arange(rows.numel())
        triu[cols, rows] = th.arange(rows.numel())
        self.triu_index = triu
        self.n_pairs = rows.numel()

    def species_index(self, symbols) -> list[int]:
        missing = sorted({s for s in symbols if s not in self.species})
        if missing:
            raise ValueError(
                f"no network for element(s) {', '.join(missing)}; these networks cover "
                f"{', '.join(self.species)}"
            )
        return [self.species.index(s) for s in symbols]

    def compute_aev(self, species, positions):
        """AEVs (atoms, radial + angular length) of one molecule, as torchani 2.2 defines them."""
        th = torch()
        a = self.aev
        n_atoms = positions.shape[0]
        n_species = len(self.species)
        vec = positions.unsqueeze(0) - positions.unsqueeze(1)  # vec[i, j] = r_j - r_i
        eye = th.eye(n_atoms, dtype=th.bool)
        safe = th.where(eye.unsqueeze(-1), th.ones_like(vec), vec)
        dist = safe.norm(dim=-1)
        # radial: 0.25 exp(-EtaR (r - ShfR)^2) fc(r), summed per neighbour species
        i, j = th.nonzero((dist.detach() <= a["Rcr"]) & ~eye, as_tuple=True)
        r = dist[i, j].view(-1, 1, 1)
        fc = 0.5 * th.cos(r * (math.pi / a["Rcr"])) + 0.5
        radial = (0.25 * th.exp(-a["EtaR"] * (r - a["ShfR"]) ** 2) * fc).flatten(1)
        radial_aev = positions.new_zeros(n_atoms * n_species, self.radial_sublength)
        radial_aev = radial_aev.index_add(0, i * n_species + species[j], radial)
        radial_aev = radial_aev.view(n_atoms, n_species * self.radial_sublength)
        # angular: pairs (j < k) of neighbours of i within Rca
        close = (dist.detach() <= a["Rca"]) & ~eye
        counts = close.sum(1)
        m = int(counts.max()) if n_atoms else 0
        angular_aev = positions.new_zeros(n_atoms * self.n_pairs, self.angular_sublength)
        if m >= 2:
            order = th.argsort((~close).to(th.int8), dim=1, stable=True)[:, :m]  # neighbours first
            p, q = th.triu_indices(m, m, 1)
            valid = (p.unsqueeze(0) < counts.unsqueeze(1)) & (q.unsqueeze(0) < counts.unsqueeze(1))
            centre, which = th.nonzero(valid, as_tuple=True)
            j = order[centre, p[which]]
            k = order[centre, q[which]]
            v1 = vec[centre, j].view(-1, 3, 1, 1, 1, 1)
            v2 = vec[centre, k].view(-1, 3, 1, 1, 1, 1)
            d1 = dist[centre, j].view(-1, 1, 1, 1, 1)
            d2 = dist[centre, k].view(-1, 1, 1, 1, 1)
            cos = (v1 * v2).sum(1) / th.clamp(d1 * d2, min=1e-10)
            angle = th.acos(0.95 * cos)
            fc12 = (0.5 * th.cos(d1 * (math.pi / a["Rca"])) + 0.5) * (
                0.5 * th.cos(d2 * (math.pi / a["Rca"])) + 0.5
            )
            f1 = ((1 + th.cos(angle - a["ShfZ"])) / 2) ** a["Zeta"]
            f2 = th.exp(-a["EtaA"] * ((d1 + d2) / 2 - a["ShfA"]) ** 2)
            terms = (2 * f1 * f2 * fc12).flatten(1)
            index = centre * self.n_pairs + self.triu_index[species[j], species[k]]
            angular_aev = angular_aev.index_add(0, index, terms)
        angular_aev = angular_aev.view(n_atoms, self.n_pairs * self.angular_sublength)
        return th.cat([radial_aev, angular_aev], dim=1)

    def energies(self, species, positions):
        """Member energies (Hartree), a tensor of shape (members,)."""
        th = torch()
        aev = self.compute_aev(species, positions)
        out = []
        for member in self.members:
            total = positions.new_zeros(())
            for s_index, symbol in enumerate(self.species):
                mask = species == s_index
                if not bool(mask.any()):
                    continue
                x = aev[mask]
                for weight, bias, activation in member.layers[symbol]:
                    x = th.nn.functional.linear(x, weight, bias)
                    if activation == "gelu":
                        x = th.nn.functional.gelu(x)
                    elif activation is not None:
                        x = th.nn.functional.celu(x, alpha=float(activation.split(":")[1]))
                total = total + x.sum() + member.self_energies[symbol] * int(mask.sum())
            out.append(total)
        return th.stack(out)
