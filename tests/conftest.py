import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n 2 on two cores: one thread per worker, or the numerical libraries' thread
    # pools (set when they are first imported, so before anything imports them) oversubscribe
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_name] = "1"

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

DATA = Path(__file__).resolve().parent / "data"


def numerical_forces(atoms, calc, delta=1e-3):
    """-dE/dx by central differences (eV/Å)."""
    work = atoms.copy()
    work.calc = calc
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for j in range(3):
            energies = []
            for sign in (1, -1):
                pos = atoms.positions.copy()
                pos[i, j] += sign * delta
                work.positions = pos
                energies.append(work.get_potential_energy())
            forces[i, j] = -(energies[0] - energies[1]) / (2 * delta)
    return forces


def directional_forces(atoms, calc, n_directions=3, delta=1e-3, seed=0):
    """Random unit directions d (3N) and -dE/dλ along each, by central differences (eV/Å):
    an analytic force array F must give F·d. Two calculations per direction instead of 6N,
    for methods where each costs seconds."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_directions, len(atoms), 3))
    directions /= np.linalg.norm(directions.reshape(n_directions, -1), axis=1)[:, None, None]
    work = atoms.copy()
    work.calc = calc
    projections = []
    for d in directions:
        energies = []
        for sign in (1, -1):
            work.positions = atoms.positions + sign * delta * d
            energies.append(work.get_potential_energy())
        projections.append(-(energies[0] - energies[1]) / (2 * delta))
    return directions, np.array(projections)


@pytest.fixture(scope="session", autouse=True)
def serial_labels():
    """Labels of the test molecules cost milliseconds, less than shipping them to a worker:
    in-process tests label in this process. The default pool is still what the tests of the
    executor itself, the Dask test, every subprocess test (unguarded scripts, the
    kill/resume test, the CLI runs) and ML-NEA's QC points (excited states, where two
    workers pay) use."""
    from ase_al import labelling
    from ase_al.executors import SerialExecutor

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(labelling, "default_executor", lambda max_workers=None: SerialExecutor())
        yield


@pytest.fixture(scope="session")
def ethanol_frames():
    """The ethanol GFN2-xTB data set (tests/data/README.md), 3001 frames."""
    import gzip
    import io

    # decompressed in memory: ASE's own reading of .gz files line by line takes a minute
    with gzip.open(DATA / "ethanol_gfn2.extxyz.gz", "rt") as handle:
        return read(io.StringIO(handle.read()), ":", format="extxyz")
