"""Active learning of ML potentials: :class:`ActiveLearner`, its option objects, and
:class:`ALRun`, the reader of a run directory.

    learner.py       the orchestration: train → sample → label → repeat, irun/attach
    settings.py      InitialData, Sampling, Selection, Uncertainty, Equilibrium
    run.py           the run directory and ALRun (state.json, labelled.db, models)
    initial_data.py  Wigner batches and the learning-curve rule; the user's structures
    training.py      the iteration's uncertainty-aware model, through the model contract
    selection.py     the m+3MAD threshold; random or farthest-point selection
    checks.py        overconfidence checks, the target-error rule, calibration.png
    plots.py         learning_curve.png, progress.png
"""

import importlib

#: public name -> the module that defines it (imported on first use: the CLI reads the
#: option objects' defaults without importing the learner and its backends)
_EXPORTS = {
    "ActiveLearner": "learner",
    "SAMPLING_KEYS": "learner",
    "ALRun": "run",
    "farthest_points": "selection",
    "Equilibrium": "settings",
    "InitialData": "settings",
    "Sampling": "settings",
    "Selection": "settings",
    "Uncertainty": "settings",
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ase_al.active_learning' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ase_al.active_learning.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ALRun",
    "ActiveLearner",
    "Equilibrium",
    "InitialData",
    "SAMPLING_KEYS",
    "Sampling",
    "Selection",
    "Uncertainty",
    "farthest_points",
]
