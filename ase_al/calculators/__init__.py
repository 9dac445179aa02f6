"""Every model and method is an ASE calculator; :func:`methods` resolves a name to one.

Names follow MLatom: ``"GFN2-xTB"``, ``"HF/6-31G*"``, ``"MP2/cc-pVDZ"``,
``"B3LYP/6-31G*"``, ``"B3LYP-D4/def2-SVP"`` (any functional PySCF knows, optionally with a
D4 dispersion correction through ``dftd4``), excited states ``"TD-B3LYP/6-31G*"``,
``"CIS/6-31G"`` and ``"SA-CASSCF(2,2)/6-31G"`` (with nonadiabatic couplings). Matching is
case-insensitive.

Third-party packages add names through the entry-point group ``ase_al.calculators``: each
entry point's name is the method name and its object a callable ``factory(**kwargs)``
returning an ASE calculator. :func:`register` does the same at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import entry_points

from ase.calculators.calculator import Calculator

from ase_al.errors import require
from ase_al.options import renamed

ENTRY_POINT_GROUP = "ase_al.calculators"

_registry: dict[str, tuple[str, Callable[..., Calculator]]] = {}


def register(name: str, factory: Callable[..., Calculator]) -> None:
    """Make ``methods(name, **kwargs)`` return ``factory(**kwargs)``."""
    _registry[name.lower()] = (name, factory)


def _xtb(method: str) -> Callable[..., Calculator]:
    def factory(**kwargs):
        from ase_al.calculators.xtb import XTB

        return XTB(method=method, **kwargs)

    return factory


register("GFN2-xTB", _xtb("GFN2-xTB"))
register("GFN1-xTB", _xtb("GFN1-xTB"))
register("GFN2-xTB*", _xtb("GFN2-xTB*"))


def _sparrow(method: str) -> Callable[..., Calculator]:
    def factory(**kwargs):
        from ase_al.calculators.sparrow import Sparrow

        return Sparrow(method=method, **kwargs)

    return factory


for _name in ("MNDO", "AM1", "RM1", "PM3", "PM6", "DFTB0", "DFTB2", "DFTB3"):
    register(_name, _sparrow(_name))


def _pretrained_ani(name: str) -> Callable[..., Calculator]:
    def factory(model_file=None, **kwargs):
        from ase_al.calculators.ani import pretrained

        return pretrained(name, model_file, **kwargs)

    return factory


for _name in ("ANI-1x", "ANI-2x", "ANI-1ccx"):
    register(_name, _pretrained_ani(_name))


def _aiqm_like(model_dir=None, **kwargs):
    from ase_al.calculators.composite import Composite

    if model_dir is None:
        raise ValueError(
            "AIQM-like needs model_dir=: a directory written by Composite.save (train one with "
            "ase_al.calculators.Composite(baseline=..., correction=...).train(images))"
        )
    return Composite.load(model_dir, **kwargs)


def _original_aiqm(name: str) -> Callable[..., Calculator]:
    def factory(**kwargs):
        raise ValueError(
            f"{name} needs the ODM2* semi-empirical Hamiltonian, which no pip-installable "
            "program provides (Sparrow has MNDO, AM1, RM1, PM3, PM6 and DFTB, not OMx). Use "
            "methods('AIQM2') (GFN2-xTB* + networks + D4, same accuracy class, offline), or "
            "train the same construction for your system with "
            "ase_al.calculators.Composite(baseline=..., correction=...)."
        )

    return factory


def _aiqm2(**kwargs):
    from ase_al.calculators.aiqm2 import AIQM2

    return AIQM2(**kwargs)


register("AIQM-like", _aiqm_like)
register("AIQM1", _original_aiqm("AIQM1"))
register("AIQM2", _aiqm2)


def _plugins() -> dict[str, tuple[str, object]]:
    return {ep.name.lower(): (ep.name, ep) for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """All method names ``methods`` resolves: fixed names, plugins, and the method/basis forms."""
    names = [shown for shown, _ in _registry.values()]
    names += [shown for shown, _ in _plugins().values()]
    names += ["HF/<basis>", "MP2/<basis>", "CCSD/<basis>", "CCSD(T)/<basis>", "ADC(2)/<basis>"]
    names += ["<functional>/<basis>", "<functional>-D4/<basis>"]
    names += ["TD-<functional or HF>/<basis>", "TDA-<functional>/<basis>", "CIS/<basis>"]
    names += ["SA-CASSCF(<electrons>,<orbitals>)/<basis>"]
    return names


def methods(name: str, **kwargs) -> Calculator:
    """An ASE calculator for the method called ``name``.

    Parameters
    ----------
    name : str
        ``"GFN2-xTB"``, ``"GFN1-xTB"``, ``"HF/<basis>"``, ``"MP2/<basis>"``,
        ``"<functional>[-D4]/<basis>"`` or a name registered by a plugin.
    **kwargs
        Passed to the calculator (e.g. ``charge``, ``multiplicity``, ``threads``).
        ``n_states``: electronic states to compute, the ground state included (excited-state
        methods: ``TD-``/``TDA-``/``CIS``, default 4; ``SA-CASSCF``, default 2).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the known names.
    """
    if not isinstance(name, str):
        raise TypeError(f"a method name must be a string, got {type(name).__name__}")
    # nstates counted excited states; n_states counts all, the ground state included
    renamed(kwargs, "nstates", "n_states", lambda n: int(n) + 1, "methods()")
    key = name.strip().lower()
    if key in _registry:
        return _registry[key][1](**kwargs)
    plugins = _plugins()
    if key in plugins:
        return plugins[key][1].load()(**kwargs)
    if "/" in key:
        method, basis = (part.strip() for part in name.strip().split("/", 1))
        active = re.fullmatch(r"(?:sa-)?casscf\((\d+),\s*(\d+)\)", method.lower())
        if active and basis:
            from ase_al.calculators.casscf import SACASSCF

            nelecas, ncas = (int(g) for g in active.groups())
            kwargs = _excited_roots(kwargs, default=2, minimum=2)
            return SACASSCF(nelecas=nelecas, ncas=ncas, basis=basis, **kwargs)
        tda = None  # ground state only unless the name asks for excited states
        for prefix, is_tda in (("TDA-", True), ("TD-", False)):
            if method.upper().startswith(prefix):
                method, tda = method[len(prefix) :], is_tda
                break
        if method.upper() == "CIS":
            method, tda = "HF", True
        method = method.replace("ω", "w").replace("Ω", "w")  # ωB97X is PySCF's wB97X
        if method.upper() == "ADC(2)":
            kwargs = _excited_roots(kwargs, default=4, minimum=2)
        elif tda is not None:
            kwargs = {"tda": tda, **_excited_roots(kwargs, default=4, minimum=2)}
        else:
            kwargs = _excited_roots(kwargs, default=None, minimum=1)
        dispersion = method.lower().endswith("-d4")
        if dispersion:
            method = method[:-3]
        from ase_al.calculators.pyscf import PySCF, is_pyscf_method

        if method and basis and is_pyscf_method(method):
            calc = PySCF(method=method, basis=basis, **kwargs)
            if not dispersion:
                return calc
            return with_d4(calc, method)
    raise ValueError(f"unknown method {name!r}; known: {', '.join(available())}")


def _excited_roots(kwargs: dict, default: int | None, minimum: int) -> dict:
    """``n_states`` (all electronic states, ground included) as PySCF's ``nstates`` (its
    count of excited roots)."""
    n_states = kwargs.pop("n_states", default)
    if n_states is None:
        return kwargs
    if int(n_states) < minimum:
        raise ValueError(
            f"n_states counts the ground state too: at least {minimum}, got {n_states}"
        )
    return {**kwargs, "nstates": int(n_states) - 1}


def with_d4(calc: Calculator, functional: str) -> Calculator:
    """``calc`` plus the DFT-D4 dispersion correction for ``functional`` (eV, eV/Å)."""
    from ase.calculators.mixing import SumCalculator

    return SumCalculator([calc, d4_dispersion(functional)])


def d4_dispersion(functional: str | None = None, params: dict | None = None) -> Calculator:
    """DFT-D4 dispersion (dftd4) as a picklable ASE calculator (eV, eV/Å): the damping of
    ``functional`` as dftd4 tabulates it, or explicit damping ``params`` (``s6``, ``s8``,
    ``a1``, ``a2``, optionally ``s9``)."""
    require("dftd4.ase", "d4")
    from ase_al.calculators.dispersion import D4

    if (functional is None) == (params is None):
        raise ValueError("d4_dispersion needs a functional or damping params, not both")
    if params is not None:
        return D4(params_tweaks=dict(params))
    return D4(method=functional)


#: Trainable model types by name (classes with train/predict/save/load); the active
#: learner looks models up here. Plugins add theirs with :func:`register_model`.
_models: dict[str, str] = {
    "kreg": "ase_al.calculators.kreg:KREG",
    "ani": "ase_al.calculators.ani:ANI",
    "mace": "ase_al.calculators.mace:MACE",
    "composite": "ase_al.calculators.composite:Composite",
    "committee": "ase_al.calculators.committee:Committee",
    "multistate": "ase_al.calculators.multistate:MultiState",
    "kregdipole": "ase_al.calculators.dipole:KREGDipole",
}


def register_model(name: str, cls) -> None:
    """Make ``model_class(name)`` return ``cls`` (a trainable calculator class)."""
    _models[name.lower()] = cls


def model_class(name: str):
    """The trainable model class called ``name`` (case-insensitive), e.g. ``"KREG"``."""
    import importlib

    entry = _models.get(name.lower())
    if entry is None:
        raise ValueError(f"unknown model type {name!r}; known: {sorted(_models)}")
    if isinstance(entry, str):
        module, attr = entry.split(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry


def __getattr__(name):
    # Calculator classes import their backends lazily, so importing ase_al stays light.
    if name == "PySCF":
        from ase_al.calculators.pyscf import PySCF

        return PySCF
    if name == "KREG":
        from ase_al.calculators.kreg import KREG

        return KREG
    if name == "Committee":
        from ase_al.calculators.committee import Committee

        return Committee
    if name == "ANI":
        from ase_al.calculators.ani import ANI

        return ANI
    if name == "MACE":
        from ase_al.calculators.mace import MACE

        return MACE
    if name == "Composite":
        from ase_al.calculators.composite import Composite

        return Composite
    if name in ("TrainableModel", "is_trainable"):
        from ase_al.calculators import base

        return getattr(base, name)
    if name == "KREGDipole":
        from ase_al.calculators.dipole import KREGDipole

        return KREGDipole
    if name == "XTB":
        from ase_al.calculators.xtb import XTB

        return XTB
    if name in ("MultiState", "MultiStateCommittee"):
        from ase_al.calculators import multistate

        return getattr(multistate, name)
    raise AttributeError(name)


__all__ = [
    "ANI",
    "KREG",
    "KREGDipole",
    "MACE",
    "TrainableModel",
    "Committee",
    "MultiState",
    "MultiStateCommittee",
    "XTB",
    "PySCF",
    "available",
    "methods",
    "register",
    "register_model",
    "model_class",
    "with_d4",
]
