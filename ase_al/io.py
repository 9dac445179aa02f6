"""ase-al's result names, and the helpers that carry every result through ASE's I/O.

ASE's own result names (``ase.outputs``: ``energy``, ``forces``, ``dipole``, ``charges``,
... — where ``energies`` means *per-atom* energies) keep ASE's meaning. What ase-al adds is
listed in :data:`RESULTS` with its shape and unit; no name collides with ASE's.
``ase.io.write`` (extxyz, traj) and ``ase.db`` keep only ASE's own results, so

- :func:`storable` returns a copy to write: ASE's results on a ``SinglePointCalculator``,
  ase-al's results in ``atoms.info`` under their names (extxyz and traj keep ``info``
  arrays of any shape);
- :func:`restore` puts them back into ``atoms.calc.results`` after ``ase.io.read``;
- :func:`write_row` / :func:`read_row` do the same for an ``ase.db`` row, ase-al's results
  going into the row's ``data``.

Batch predictions (``model.predict(images)``) use the same names with a leading batch axis
P: ``energy`` (P,), ``forces`` (P, N, 3), ``energy_uncertainty`` (P,), ``state_energies``
(P, S), ...
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_properties
from ase.calculators.singlepoint import SinglePointCalculator

#: ase-al's result names beyond ``ase.outputs``: name -> (shape, unit, meaning).
#: N atoms, S electronic states (ground state included), M committee members.
RESULTS: dict[str, tuple[str, str, str]] = {
    "energy_uncertainty": (
        "()",
        "eV",
        "committee spread (standard deviation, or |E_main − E_aux| of the physics-informed "
        "pair); for an `UncertainModel` its estimator's value (GP posterior standard "
        "deviation, scaled nearest distance, or your function)",
    ),
    "forces_uncertainty": ("(N, 3)", "eV/Å", "committee spread of each force component"),
    "state_energies": ("(S,)", "eV", "total energy of each electronic state, ground first"),
    "state_forces": ("(S, N, 3)", "eV/Å", "forces on each electronic state"),
    "state_uncertainties": ("(S,)", "eV", "committee spread of each state's energy"),
    "member_energies": ("(M, S)", "eV", "each committee member's state energies"),
    "excitation_energies": ("(S − 1,)", "eV", "vertical excitation energies from the ground"),
    "oscillator_strengths": ("(S − 1,)", "1", "length-gauge oscillator strengths"),
    "nacs": ("(S, S, N, 3)", "1/Å", "nonadiabatic coupling vectors ⟨k|∇l⟩"),
}


def results_table() -> str:
    """:data:`RESULTS` (and the ASE names ase-al's calculators return) as Markdown."""
    lines = [
        "| result | shape | unit | meaning |",
        "|---|---|---|---|",
        "| `energy` | () | eV | ASE's: potential energy (of the current state) |",
        "| `forces` | (N, 3) | eV/Å | ASE's: forces (of the current state) |",
        "| `dipole` | (3,) | e·Å | ASE's: dipole moment |",
        "| `charges` | (N,) | e | ASE's: atomic partial charges |",
    ]
    for name, (shape, unit, meaning) in RESULTS.items():
        lines.append(f"| `{name}` | {shape} | {unit} | {meaning} |")
    return "\n".join(lines)


def register_result(name: str, shape: str, unit: str, meaning: str) -> None:
    """Add a result name of a plugin's calculator, so that :func:`restore` brings it back."""
    if name in all_properties:
        raise ValueError(f"{name!r} is ASE's own result name; choose another")
    RESULTS[name] = (shape, unit, meaning)


def _split(results: dict, n_atoms: int) -> tuple[dict, dict]:
    """ASE's own results (what a SinglePointCalculator and ase.db keep) and the rest."""
    ase_results, ours = {}, {}
    for name, value in results.items():
        if name == "energies" and np.shape(value) != (n_atoms,):
            raise ValueError(
                f"a result 'energies' of shape {np.shape(value)} on {n_atoms} atoms: ASE reads "
                "'energies' as per-atom energies; per-state energies are 'state_energies'"
            )
        if name in all_properties:
            ase_results[name] = value
        else:  # ase-al's (and, not restored unless registered, anyone else's)
            ours[name] = value if np.isscalar(value) else np.asarray(value)
    return ase_results, ours


def first_structure(result: dict) -> dict:
    """A calculator's ``results`` from a batched prediction (leading axis: structures): the
    first structure's entries, 0-d ones as ``float``."""
    return {k: float(v[0]) if np.ndim(v[0]) == 0 else v[0] for k, v in result.items()}


def storable(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` that ``ase.io.write`` (extxyz, traj) writes without losing any
    result: ASE's results on a ``SinglePointCalculator``, ase-al's in ``info``."""
    copy = atoms.copy()
    if atoms.calc is None:
        return copy
    ase_results, ours = _split(atoms.calc.results, len(atoms))
    copy.calc = SinglePointCalculator(copy, **ase_results)
    for name, value in ours.items():
        copy.info[name] = value
    return copy


def restore(atoms: Atoms, data: dict | None = None) -> Atoms:
    """Move ase-al's results from ``atoms.info`` (or a database row's ``data``) back into
    ``atoms.calc.results`` (in place; a ``SinglePointCalculator`` is attached if there is
    none). Returns ``atoms``."""
    found = {name: atoms.info.pop(name) for name in list(atoms.info) if name in RESULTS}
    found.update({name: value for name, value in (data or {}).items() if name in RESULTS})
    if not found:
        return atoms
    if atoms.calc is None:
        atoms.calc = SinglePointCalculator(atoms)
    for name, value in found.items():
        atoms.calc.results[name] = np.asarray(value) if np.ndim(value) else float(value)
    return atoms


def write_row(db, atoms: Atoms, data: dict | None = None, **key_value_pairs) -> int:
    """``db.write`` that keeps every result: ase-al's go into the row's ``data``."""
    row_data = dict(data or {})
    if atoms.calc is not None:
        ase_results, ours = _split(atoms.calc.results, len(atoms))
        plain = atoms.copy()
        plain.calc = SinglePointCalculator(plain, **ase_results)
        atoms = plain
        row_data.update(ours)
    return db.write(atoms, data=row_data, **key_value_pairs)


def read_row(row, add_additional_information: bool = True) -> Atoms:
    """The row's Atoms with every result, ase-al's restored from the row's ``data``."""
    atoms = row.toatoms(add_additional_information=add_additional_information)
    return restore(atoms, row.data)


def key_value_pairs(atoms: Atoms) -> dict:
    """The key-value pairs of a structure: those of its row when it was read back by
    :func:`read_row` (ASE nests them in ``info["key_value_pairs"]``), else its ``info``
    (a structure not written yet)."""
    return atoms.info.get("key_value_pairs", atoms.info)


__all__ = [
    "RESULTS",
    "key_value_pairs",
    "read_row",
    "register_result",
    "restore",
    "results_table",
    "storable",
    "write_row",
]


def read_mlatom_json(path) -> list[Atoms]:
    """Structures of an MLatom molecular-database JSON file (``molDB.dump(..., format="json")``,
    e.g. an AL folder's ``init_cond_db.json``), read with the standard library: per molecule
    ``atoms`` [{``atomic_number``, ``xyz_coordinates`` (Å), optional ``energy_gradients``
    (Hartree/Å), ``xyz_velocities`` (Å/fs)}], ``charge``, ``multiplicity`` and an optional
    ``energy`` (Hartree). Energies become eV and gradients forces (eV/Å) on a
    ``SinglePointCalculator``; structures without an energy come back unlabelled."""
    import json
    from pathlib import Path

    from ase import units
    from ase.units import Hartree

    try:
        data = json.loads(Path(path).read_text())
        molecules = data["molecules"] if isinstance(data, dict) else data
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not an MLatom molecular database (JSON): {err}") from None
    images = []
    for index, molecule in enumerate(molecules):
        try:
            atoms_data = molecule["atoms"]
            numbers = [int(a["atomic_number"]) for a in atoms_data]
            positions = [a["xyz_coordinates"] for a in atoms_data]
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"{path}: molecule {index} has no atoms with coordinates ({err})"
            ) from None
        atoms = Atoms(numbers=numbers, positions=positions)
        atoms.info["charge"] = int(molecule.get("charge", 0))
        atoms.info["multiplicity"] = int(molecule.get("multiplicity", 1))
        if all("xyz_velocities" in a for a in atoms_data):
            velocities = np.array([a["xyz_velocities"] for a in atoms_data])  # Å/fs
            atoms.set_velocities(velocities / units.fs)
        energy = molecule.get("energy")
        if energy is not None:
            forces = None
            if all("energy_gradients" in a for a in atoms_data):
                forces = -np.array([a["energy_gradients"] for a in atoms_data]) * Hartree
            atoms.calc = SinglePointCalculator(atoms, energy=float(energy) * Hartree, forces=forces)
        images.append(atoms)
    return images
