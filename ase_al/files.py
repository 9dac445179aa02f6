"""Writing files so that a killed run leaves the old version or the new one, never half."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ase import Atoms
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
    """Write ``images`` as an ASE ``.traj`` atomically (an empty list gives an empty file)."""
    with atomic_write(path) as partial:
        if images:
            write(partial, images, format="traj")
        else:
            partial.write_bytes(b"")
