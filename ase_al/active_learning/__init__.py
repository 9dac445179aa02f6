"""Active learning of ML potentials: :class:`ActiveLearner`, its option objects, and
:class:`ALRun`, the reader of a run directory.

    learner.py       the orchestration: train → sample → label → repeat, irun/attach
    settings.py      InitialData, Sampling, Selection, Uncertainty, Equilibrium
    run.py           the run directory and ALRun (state.json, labelled.db, models)
    initial_data.py  Wigner batches and the learning-curve rule; the user's structures
    training.py      the iteration's uncertainty-aware model, through the model contract
    selection.py     the m+3MAD threshold; random or farthest-point selection
    plots.py         learning_curve.png, progress.png
"""

from ase_al.active_learning.learner import SAMPLING_KEYS, ActiveLearner
from ase_al.active_learning.run import ALRun
from ase_al.active_learning.selection import farthest_points
from ase_al.active_learning.settings import (
    Equilibrium,
    InitialData,
    Sampling,
    Selection,
    Uncertainty,
)

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
