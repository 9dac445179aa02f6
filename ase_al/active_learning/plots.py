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
    """Validation error, threshold and the fraction of certain trajectories per iteration;
    for a run that relaxes its starting structures on each model, a fourth panel: how far
    each relaxation's energy change is from the reference's (|error|, kcal/mol, log scale;
    a hole of the model as a cross at the top), with the target error as a line."""
    from ase import units
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    k = [it["iteration"] for it in history]
    relaxed = any("relaxation_errors" in it for it in history)
    fig = Figure(figsize=(13.3 if relaxed else 10, 3))
    axes = fig.subplots(1, 4 if relaxed else 3)
    axes[0].plot(k, [it["validation_rmse"] or np.nan for it in history], "o-")
    axes[0].set(xlabel="iteration", ylabel="validation energy RMSE / eV")
    axes[1].plot(k, [np.atleast_1d(it["threshold"]) for it in history], "o-")
    axes[1].set(xlabel="iteration", ylabel="UQ threshold / eV")
    axes[2].plot(k, [it["n_certain"] / max(it["n_trajectories"], 1) for it in history], "o-")
    axes[2].set(xlabel="iteration", ylabel="certain trajectories", ylim=(0, 1.05))
    if relaxed:
        _plot_relaxation_errors(axes[3], history, units.kcal / units.mol)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_relaxation_errors(ax, history: list[dict], kcal_mol: float) -> None:
    """|relaxation error| (kcal/mol) per starting structure and iteration, log scale."""
    points = sorted({key for it in history for key in it.get("relaxation_errors", {})}, key=int)
    top = 1.0
    for key in points:
        ks, values = [], []
        for it in history:
            error = it.get("relaxation_errors", {}).get(key)
            if error is not None:
                ks.append(it["iteration"])
                values.append(max(abs(error) / kcal_mol, 1e-3))
        top = max([top, *values])
        ax.semilogy(ks, values, "o-", ms=4, label=f"structure {key}")
    holes = [
        it["iteration"]
        for it in history
        if any(r.get("collapsed") for r in it.get("relaxations", []))
    ]
    if holes:
        ax.semilogy(holes, [top] * len(holes), "kx", ms=8, label="hole")
    target = next((it.get("target_error") for it in reversed(history)), None)
    if target is not None:
        ax.axhline(target / kcal_mol, color="tab:red", ls=":", lw=1, label="target")
    ax.set(xlabel="iteration", ylabel="|relaxation error| / kcal/mol")
    ax.legend(fontsize=6)


__all__ = ["plot_learning_curve", "plot_progress"]
