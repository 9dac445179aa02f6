"""Where work runs: the one default local executor, and the check that work can be shipped.

Every place in ase-al that starts workers (labelling, the active learner, ML-NEA, surface
hopping ensembles, the CLI) gets its pool from :func:`default_executor`. It is joblib's
``loky`` reusable executor, chosen over :class:`concurrent.futures.ProcessPoolExecutor`
because

- its workers are fresh interpreters that never re-run the user's ``__main__`` (the standard
  library's ``spawn`` start method re-imports the main script in every worker, so a script
  without an ``if __name__ == "__main__":`` guard starts the whole job once per worker and the
  pool breaks);
- it ships functions and objects with ``cloudpickle``, so a calculator class, a sampler
  function or a lambda defined in a script's ``__main__`` or a Jupyter cell reaches the
  workers (the standard pickle refers to them by a name the workers cannot import);
- workers are reused from one call to the next and exit by themselves when idle, so an
  active-learning run does not pay the start-up of PySCF or torch in every iteration;
- workers exit when the process that started them is gone (see :func:`exit_with_parent`):
  a run killed with ``kill`` or by a batch system resumes later, and leaves no worker
  behind still training a network or labelling for nobody.

``executor=`` arguments still take any :class:`concurrent.futures.Executor`: a
``dask.distributed.Client(...).get_executor()`` on a cluster, a user's pool, or
:class:`SerialExecutor` to run everything in this process.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor

#: seconds an idle default worker waits for more work before it exits
IDLE_TIMEOUT = 300
#: seconds between a default worker's checks that the process that started it is alive
PARENT_POLL = 1.0


def exit_with_parent(parent: int) -> None:
    """Run in each default worker as it starts: a daemon thread that ends the worker (exit
    status 1) within :data:`PARENT_POLL` seconds of its parent process ``parent`` (a pid)
    going away.

    Killing a script with ``kill`` (SIGTERM) or SIGKILL ends only that process; without
    this, a worker in the middle of a task (a network's training: minutes) ran it to the
    end, using its cores for a result nobody would read, and an idle one waited out
    :data:`IDLE_TIMEOUT`."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="ase-al-parent-watch", daemon=True).start()


class SerialExecutor(Executor):
    """Runs each call at submission, in this process (debugging, tiny jobs, objects that
    cannot be pickled)."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # the caller sees it through the future, as with a pool
            future.set_exception(err)
        return future


def default_executor(max_workers: int | None = None) -> Executor:
    """The local pool of worker processes (one per core by default).

    The pool is shared and reused (``loky``'s reusable executor): callers do not shut it
    down; idle workers exit after :data:`IDLE_TIMEOUT` seconds. Each worker gets an equal
    share of the cores for OpenMP/BLAS threads, so that the workers together do not
    oversubscribe the machine, and exits when this process is gone
    (:func:`exit_with_parent`).
    """
    from joblib.externals.loky import get_reusable_executor

    cores = os.cpu_count() or 1
    workers = max(1, int(max_workers or cores))
    threads = str(max(1, cores // workers))
    env = {name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return get_reusable_executor(
        max_workers=workers,
        timeout=IDLE_TIMEOUT,
        env=env,
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


def check_shippable(obj, what: str, executor: Executor | None = None) -> None:
    """Raise a one-line ``TypeError`` before any work if ``obj`` cannot be sent to workers.

    The default pool and Dask serialise with ``cloudpickle`` (objects defined in
    ``__main__`` are sent by value); a standard :class:`ProcessPoolExecutor` uses plain
    pickle, so its check is the stricter one.
    """
    if isinstance(executor, SerialExecutor):  # runs in this process: nothing is shipped
        return
    if isinstance(executor, ProcessPoolExecutor):
        import pickle as serialiser
    else:  # the serialiser of the default pool and of Dask
        import cloudpickle as serialiser
    try:
        serialiser.dumps(obj)
    except Exception as err:
        raise TypeError(
            f"the {what} ({type(obj).__name__}) cannot be sent to worker processes: "
            f"{type(err).__name__}: {err}. Give a method by name (e.g. 'GFN2-xTB'), make the "
            "object picklable, or run in this process with "
            "executor=ase_al.executors.SerialExecutor()"
        ) from None
