"""Samplers: callables that return structures worth labelling.

Built-in samplers are registered by name; third-party packages add theirs through the
entry-point group ``ase_al.samplers`` (name -> callable).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from ase_al.samplers.batch_md import SamplingResult, batch_md
from ase_al.samplers.md import md
from ase_al.samplers.surface_hopping import surface_hopping
from ase_al.samplers.wigner import remove_rigid_motion, transition_state_sampling, wigner

ENTRY_POINT_GROUP = "ase_al.samplers"

_registry: dict[str, Callable] = {
    "wigner": wigner,
    "batch_md": batch_md,
    "md": md,
    "surface_hopping": surface_hopping,
}


def register(name: str, sampler: Callable) -> None:
    """Make ``get_sampler(name)`` return ``sampler``."""
    _registry[name.lower()] = sampler


def available() -> list[str]:
    """Names of all registered and plugin samplers."""
    return sorted(
        set(_registry) | {ep.name.lower() for ep in entry_points(group=ENTRY_POINT_GROUP)}
    )


def get_sampler(name: str) -> Callable:
    """The sampler called ``name``; ``ValueError`` listing known names if there is none."""
    key = name.lower()
    if key in _registry:
        return _registry[key]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name.lower() == key:
            return ep.load()
    raise ValueError(f"unknown sampler {name!r}; known: {', '.join(available())}")


__all__ = [
    "available",
    "batch_md",
    "get_sampler",
    "md",
    "register",
    "remove_rigid_motion",
    "SamplingResult",
    "surface_hopping",
    "transition_state_sampling",
    "wigner",
]
