"""Exceptions raised by ase-al, and the input checks that raise them."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, CalculatorSetupError


class ReferenceCalculationError(CalculationFailed):
    """A reference calculation failed: ASE's :class:`CalculationFailed`, so code that catches
    calculator failures catches it.

    The geometry is kept in :attr:`atoms` so that a failed structure can be
    inspected or skipped; a failed calculation is never returned as a number.
    """

    def __init__(self, message: str, atoms: Atoms | None = None):
        super().__init__(message)
        self.atoms = None if atoms is None else atoms.copy()


class SCFNotConvergedError(ReferenceCalculationError):
    """A self-consistent field (or another iterative electronic-structure solver) did not
    converge."""


class NotTrainedError(CalculatorSetupError):
    """A trainable model was asked to predict or save before it was trained or loaded."""

    def __init__(self, model: object, action: str = "predict"):
        name = getattr(model, "model_name", type(model).__name__)
        super().__init__(
            f"this {name} model is not trained: call train(images) or {type(model).__name__}"
            f".load(path) before you {action}"
        )


class MissingDependencyError(ImportError):
    """An optional backend is not installed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional backend, or raise :class:`MissingDependencyError` naming its extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{module!r} is needed for this feature: pip install 'ase-al[{extra}]'"
        ) from err


def same_atoms(atoms: Atoms, numbers) -> bool:
    """True if ``atoms`` has exactly these atomic numbers, in this order."""
    return len(atoms) == len(numbers) and bool(np.all(atoms.numbers == np.asarray(numbers)))


def check_same_atoms(
    images, numbers, what: str = "structure", whose: str = "the molecule's atoms"
) -> None:
    """Check every structure of ``images`` (:func:`check_atoms`) and that it has exactly the
    atomic ``numbers``, in this order; a ``ValueError`` names the first that does not."""
    for index, atoms in enumerate(images):
        check_atoms(atoms)
        if not same_atoms(atoms, numbers):
            raise ValueError(
                f"{what} {index} ({atoms.get_chemical_formula()}) does not match {whose} in "
                "count, elements or order"
            )


def check_atoms(atoms: Atoms) -> None:
    """Reject structures no calculator can handle, with a message naming the problem."""
    if not isinstance(atoms, Atoms):
        raise TypeError(f"expected an ase.Atoms object, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise ValueError("the structure has no atoms")
    positions = atoms.get_positions()
    if not np.all(np.isfinite(positions)):
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(positions))[:, 0]})
        raise ValueError(f"atom positions contain NaN or infinite values (atoms {bad})")


def spin_and_charge(atoms: Atoms, charge: int | None, multiplicity: int | None) -> tuple[int, int]:
    """Charge and spin multiplicity from the parameters, else ``atoms.info``, else neutral.

    The default multiplicity is the lowest the electron count allows (singlet or doublet).
    Raises ``ValueError`` when the multiplicity is impossible for the electron count.
    """
    if charge is None:
        charge = int(atoms.info.get("charge", 0))
    n_electrons = int(atoms.get_atomic_numbers().sum()) - charge
    if multiplicity is None:
        multiplicity = int(atoms.info.get("multiplicity", 1 + n_electrons % 2))
    unpaired = multiplicity - 1
    if n_electrons < 0 or unpaired < 0 or unpaired > n_electrons or (n_electrons - unpaired) % 2:
        raise ValueError(
            f"spin multiplicity {multiplicity} is impossible for {n_electrons} electrons "
            f"(charge {charge}): an {'odd' if n_electrons % 2 else 'even'} electron count "
            f"needs an {'even' if n_electrons % 2 else 'odd'} multiplicity"
        )
    return charge, multiplicity
