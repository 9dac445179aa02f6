"""Writing files so that a killed run leaves the old version or the new one, never half."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ase import Atoms
from ase.db import connect
from ase.io import write


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.

    The temporary name ends in ``.partial``, so a glob on the real suffix never sees it.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    yield partial
    partial.replace(path)


def write_traj(path: str | Path, images: list[Atoms]) -> None:
    """Write ``images`` as an ASE ``.traj`` atomically (an empty list gives an empty file),
    every result kept (:func:`ase_al.io.storable`)."""
    from ase_al.io import storable

    with atomic_write(path) as partial:
        if images:
            write(partial, [storable(atoms) for atoms in images], format="traj")
        else:
            partial.write_bytes(b"")


def read_traj(path: str | Path) -> list[Atoms]:
    """Every frame of a ``.traj`` with ase-al's results restored (:func:`ase_al.io.restore`);
    an empty file gives an empty list."""
    from ase.io import read

    from ase_al.io import restore

    if Path(path).stat().st_size == 0:
        return []
    return [restore(atoms) for atoms in read(path, ":")]


def open_database(path: str | Path):
    """The ASE SQLite database at ``path`` for a run that may be killed while others read it.

    A new database appears with its tables already in it: it is initialised under a temporary
    name and hard-linked into place. ASE creates the tables of a fresh file on first access,
    checking for them first, so a reader that opens the file between its creation and that
    first write (``ase db``, ``ase gui``, a monitoring script) would otherwise create them too,
    and the run's own access would fail with "table systems already exists".
    ASE's lock file is not used: SQLite's own locks die with a killed process, ASE's lock
    file would not, and would block the resumed run.
    """
    path = Path(path)
    if not path.exists():
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        try:
            connect(partial, type="db", use_lock_file=False).count()  # creates the tables
            try:
                os.link(partial, path)  # never replaces a database that appeared meanwhile
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: a rename, if still absent
                if not path.exists():
                    os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return connect(path, use_lock_file=False)
