"""Reference calculations on any ``concurrent.futures.Executor``, saved as soon as they finish.

The default executor is the shared local pool of :func:`ase_al.executors.default_executor`
(workers that never re-run the user's ``__main__``). On a cluster, pass
``dask.distributed.Client(...).get_executor()``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import BrokenExecutor, Executor, as_completed
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm.auto import tqdm

from ase_al.executors import SerialExecutor, check_shippable, default_executor
from ase_al.io import write_row

log = logging.getLogger("ase_al")

__all__ = ["LabellingResult", "SerialExecutor", "compute_label", "label"]


def compute_label(reference: str | Calculator, atoms: Atoms, n_states: int | None = None) -> Atoms:
    """``atoms`` with the reference energy (eV) and forces (eV/Å) attached; with ``n_states``,
    also every state's energies and forces (results ``state_energies``, ``state_forces``) of a
    multistate reference (see :func:`~ase_al.calculators.multistate.label_multistate`)."""
    if isinstance(reference, str):
        from ase_al.calculators import methods

        reference = methods(reference)
    if n_states is not None:
        from ase_al.calculators.multistate import label_multistate

        return label_multistate(atoms, reference, n_states)
    work = atoms.copy()
    work.calc = reference
    energy, forces = work.get_potential_energy(), work.get_forces()
    labelled = atoms.copy()
    labelled.calc = SinglePointCalculator(labelled, energy=energy, forces=forces)
    return labelled


@dataclass
class LabellingResult:
    """What a labelling round produced: labelled structures and the failures (atoms, error)."""

    labelled: list[Atoms] = field(default_factory=list)
    failed: list[tuple[Atoms, str]] = field(default_factory=list)


def label(
    images: list[Atoms],
    reference: str | Calculator,
    executor: Executor | None = None,
    db=None,
    key_value_pairs: dict | None = None,
    progress: bool | None = None,
    n_states: int | None = None,
    info_keys: tuple[str, ...] = (),
) -> LabellingResult:
    """Run the reference on every structure, writing each result to ``db`` when it arrives.

    Parameters
    ----------
    images : list of Atoms
        Structures to label; ``atoms.info["uid"]``, when present, is stored with the label.
    reference : str or Calculator
        A method name for :func:`ase_al.methods` or a (picklable) calculator.
    executor : Executor, optional
        Where to run; default: the shared local pool
        (:func:`ase_al.executors.default_executor`).
    db : ase.db connection or path, optional
        Each label is written the moment it exists, with ``key_value_pairs``.
    progress : bool, optional
        Progress bar (default: when interactive).
    n_states : int, optional
        Label the lowest ``n_states`` states of a multistate reference; the database row
        keeps them in its data (``state_energies``, ``state_forces``).
    info_keys : tuple of str
        Entries of ``atoms.info`` (numbers or strings) also stored as key-value pairs, e.g.
        how a structure was sampled (``trajectory``, ``time_fs``, ``uncertainty``).

    A failed reference calculation is logged and recorded in ``failed``, never raised.
    """
    result = LabellingResult()
    if not images:
        return result
    if isinstance(db, (str, os.PathLike)):
        from ase.db import connect

        db = connect(db)
    elif db is not None and not callable(getattr(db, "write", None)):
        raise TypeError(f"db must be an ase.db connection or a path, got {type(db).__name__}")
    if not isinstance(reference, str):
        check_shippable(reference, "reference calculator", executor)
    executor = default_executor() if executor is None else executor
    futures = {}
    try:
        futures = {
            executor.submit(compute_label, reference, atoms, n_states): atoms for atoms in images
        }
        bar = tqdm(
            total=len(futures), desc="labelling", disable=None if progress is None else not progress
        )
        for future in as_completed(futures):
            atoms = futures[future]
            try:
                labelled = future.result()
            except BrokenExecutor as err:
                # the pool itself died (a worker killed, out of memory): not the reference's
                # fault, and every later structure would fail the same way
                raise RuntimeError(
                    f"the worker processes stopped ({type(err).__name__}: {err}); labels "
                    "written so far are kept, and running again resumes"
                ) from err
            except Exception as err:
                log.warning(
                    "reference calculation failed (%s): %s", atoms.info.get("uid", "?"), err
                )
                result.failed.append((atoms, f"{type(err).__name__}: {err}"))
            else:
                labelled.info.update(atoms.info)
                if db is not None:
                    pairs = dict(key_value_pairs or {})
                    if "uid" in atoms.info:
                        pairs["uid"] = str(atoms.info["uid"])
                    for key in info_keys:
                        value = atoms.info.get(key)
                        if isinstance(value, (int, float, np.integer, np.floating, str)):
                            pairs[key] = value.item() if isinstance(value, np.generic) else value
                    write_row(db, labelled, **pairs)
                result.labelled.append(labelled)
            bar.update()
        bar.close()
    finally:
        for future in futures:
            future.cancel()
    return result
