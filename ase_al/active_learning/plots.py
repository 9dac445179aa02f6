"""The run's pictures: the initial-data learning curve and the per-iteration progress.

Figures are built with matplotlib's object API (no pyplot), so the user's backend and open
figures stay as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_learning_curve(curve: list, path: str | Path) -> None:
    """Log-log plot of (training points, cross-validation energy RMSE / eV)."""
    if not curve:
        return
    from matplotlib.figure import Figure

    n, rmse = np.array(curve).T
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.loglog(n, rmse, "o-")
    ax.set(xlabel="training points", ylabel="CV energy RMSE / eV", title="initial data")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_progress(history: list[dict], path: str | Path) -> None:
    """Validation error, threshold and the fraction of certain trajectories per iteration."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    k = [it["iteration"] for it in history]
    fig = Figure(figsize=(10, 3))
    axes = fig.subplots(1, 3)
    axes[0].plot(k, [it["validation_rmse"] or np.nan for it in history], "o-")
    axes[0].set(xlabel="iteration", ylabel="validation energy RMSE / eV")
    axes[1].plot(k, [np.atleast_1d(it["threshold"]) for it in history], "o-")
    axes[1].set(xlabel="iteration", ylabel="UQ threshold / eV")
    axes[2].plot(k, [it["n_certain"] / max(it["n_trajectories"], 1) for it in history], "o-")
    axes[2].set(xlabel="iteration", ylabel="certain trajectories", ylim=(0, 1.05))
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)


__all__ = ["plot_learning_curve", "plot_progress"]
