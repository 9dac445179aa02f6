"""ML-NEA: a converged nuclear-ensemble spectrum from a few hundred QC calculations.

Xue, Dral, Barbatti, J. Phys. Chem. A 124, 7199 (2020): excitation energies ΔE₀ₙ and
oscillator strengths f₀ₙ computed by the reference on a growing subset of a Wigner ensemble
teach one KREG model per state and quantity; when the geometric-mean validation error stops
changing, the models predict ΔE and f for the whole ensemble (tens of thousands of
geometries) and the NEA cross section follows.

    workdir/
      equilibrium.traj, hessian.npy   reference ground-state minimum and Hessian
      ensemble.npy                    Wigner positions (N_ensemble, N_atoms, 3), Å
      qc.npz                          reference ΔE (eV) and f of the labelled ensemble points
      summary.json                    QC points used, convergence history
      cross-section/                  MLatom's file names and columns (DE/eV lambda/nm sigma/A^2):
        cross-section_ml-nea.dat, cross-section_qc-nea.dat, cross-section_spc.dat, plot.png

(Slightly over 400 lines: the resumable QC-point bookkeeping, the per-state models and
the spectrum files of one workflow.)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from ase_al.calculators import methods
from ase_al.calculators.kreg import KREG
from ase_al.errors import ReferenceCalculationError
from ase_al.executors import default_executor
from ase_al.files import atomic_write
from ase_al.options import renames
from ase_al.simulations import equilibrium_and_modes
from ase_al.spectra.nea import cross_section, wavelengths

log = logging.getLogger("ase_al")


def reference_excitations(
    reference, n_excitations: int, atoms: Atoms
) -> tuple[np.ndarray, np.ndarray]:
    """(ΔE in eV, f) of ``n_excitations`` states for one structure (picklable for executors)."""
    if isinstance(reference, str):
        calc = methods(reference, n_states=n_excitations + 1)
    else:
        calc = reference
    work = atoms.copy()
    work.calc = calc
    return (
        np.asarray(calc.get_property("excitation_energies", work))[:n_excitations],
        np.asarray(calc.get_property("oscillator_strengths", work))[:n_excitations],
    )


class MLNEA:
    """ML-NEA absorption spectrum of one molecule.

    Parameters
    ----------
    molecule : Atoms
        Starting geometry (optimised with the ground state of the reference).
    reference : str
        Excited-state method, e.g. ``"TD-B3LYP/6-31G*"``, ``"TDA-PBE0/def2-SVP"``, ``"CIS/6-31G"``.
    n_excitations : int
        Excited states in the spectrum.
    ensemble_size : int
        Wigner geometries whose ΔE and f the ML models predict.
    step : int
        QC points added per iteration.
    max_points : int
        Upper bound on QC calculations.
    rrmse_threshold : float
        Converged when |rRMSE| = |RMSE_geom(N) − RMSE_geom(N − step)| / RMSE_geom(N) is below it.
    temperature : float
        Wigner sampling temperature in K (0: vibrational ground state).
    delta : float
        NEA broadening in eV (of ML-NEA, and of QC-NEA unless ``qc_delta`` is given).
    spc_delta : float
        Broadening in eV of the single-point convolution at the equilibrium geometry.
    qc_delta : float, optional
        Broadening in eV of the QC-NEA spectrum (MLatom's ``deltaQCNEA``; its ML-NEA uses
        0.01 eV).
    grid_step : float, optional
        eV between spectrum points (MLatom: 0.002); default 1000 points over the band.
    executor : concurrent.futures.Executor, optional
        Where the QC calculations run: default, as for active-learning labels, the shared
        local pool (:func:`ase_al.executors.default_executor`, one worker per core; no
        ``__main__`` guard needed); ``dask.distributed.Client(...).get_executor()`` on a
        cluster; ``ase_al.executors.SerialExecutor()`` for this process.
    ensemble : path or list of Atoms, optional
        Your own nuclear ensemble (any multi-frame file ASE reads, same atoms as ``molecule``)
        instead of Wigner sampling; ``molecule`` is then taken as the equilibrium geometry.
    qc_excitation_energies, qc_oscillator_strengths : arrays (N_qc, n_excitations), optional
        Excitation energies (eV) and oscillator strengths already computed (e.g. by another
        program) for the first N_qc geometries of ``ensemble``. With ``reference=None`` no QC
        calculation is run: the models learn from these points only.
    equilibrium_excitations : (energies, strengths), optional
        The equilibrium geometry's own excitation energies (eV) and oscillator strengths,
        for the SPC spectrum when there is no reference to compute them (with a reference
        they are computed).
    plot_qcnea, plot_spc : bool
        Overlay the QC-NEA and SPC spectra in ``cross-section/plot.png`` (MLatom's
        ``plotQCNEA``, ``plotQCSPC``).
    """

    @renames(nstates="n_excitations")
    def __init__(
        self,
        molecule: Atoms,
        reference: str = "TD-B3LYP/6-31G*",
        n_excitations: int = 3,
        ensemble_size: int = 50000,
        step: int = 50,
        max_points: int = 1000,
        rrmse_threshold: float = 0.1,
        temperature: float = 0.0,
        delta: float = 0.05,
        spc_delta: float = 0.3,
        qc_delta: float | None = None,
        grid_step: float | None = None,
        workdir: str | Path = "mlnea",
        executor=None,
        seed: int = 0,
        ensemble=None,
        qc_excitation_energies=None,
        qc_oscillator_strengths=None,
        equilibrium_excitations=None,
        plot_qcnea: bool = True,
        plot_spc: bool = True,
    ):
        self.molecule = molecule.copy()
        self.reference = reference
        if reference is not None:
            methods(reference, n_states=n_excitations + 1)  # an unknown method fails here
        self.user_ensemble = self._read_ensemble(ensemble) if ensemble is not None else None
        self.user_qc = self._user_qc(qc_excitation_energies, qc_oscillator_strengths, n_excitations)
        if reference is None and not self.user_qc:
            raise ValueError(
                "without a reference method, give qc_excitation_energies and "
                "qc_oscillator_strengths for the first points of the ensemble"
            )
        if self.user_qc and self.user_ensemble is None:
            raise ValueError("QC data of your own need the ensemble they belong to (ensemble=)")
        self.plot_qcnea = plot_qcnea
        self.plot_spc = plot_spc
        self.equilibrium_excitations = None
        if equilibrium_excitations is not None:
            de_eq, f_eq = (np.asarray(x, float).ravel() for x in equilibrium_excitations)
            if len(de_eq) < n_excitations or len(f_eq) < n_excitations:
                raise ValueError(
                    f"equilibrium_excitations: {n_excitations} energies and strengths needed, "
                    f"got {len(de_eq)} and {len(f_eq)}"
                )
            self.equilibrium_excitations = (de_eq[:n_excitations], f_eq[:n_excitations])
        self.n_excitations = n_excitations
        self.ensemble_size = ensemble_size
        self.step = step
        self.max_points = max_points
        self.rrmse_threshold = rrmse_threshold
        self.temperature = temperature
        self.delta = delta
        self.spc_delta = spc_delta
        self.qc_delta = delta if qc_delta is None else float(qc_delta)
        if self.qc_delta <= 0 or delta <= 0 or (grid_step is not None and grid_step <= 0):
            raise ValueError("delta, qc_delta and grid_step must be positive (eV)")
        self.grid_step = grid_step
        self.workdir = Path(workdir)
        self.executor = executor
        self.seed = seed
        self.history: list[tuple[int, float]] = []
        self._first_error: str | None = None

    # -- pieces ------------------------------------------------------------------------
    def _read_ensemble(self, ensemble) -> np.ndarray:
        from ase.io import read

        from ase_al.errors import check_same_atoms

        try:
            frames = read(ensemble, ":") if isinstance(ensemble, str | Path) else list(ensemble)
        except Exception as err:
            raise ValueError(f"cannot read the ensemble {ensemble}: {err}") from None
        check_same_atoms(frames, self.molecule.numbers, "ensemble geometry")
        return np.array([a.positions for a in frames])

    def _user_qc(self, energies, strengths, n_excitations) -> dict:
        if energies is None and strengths is None:
            return {}
        energies = np.asarray(energies, float).reshape(len(energies), -1)
        strengths = np.asarray(strengths, float).reshape(len(strengths), -1)
        if energies.shape != strengths.shape or energies.shape[1] < n_excitations:
            raise ValueError(
                "qc_excitation_energies and qc_oscillator_strengths must both be "
                f"(N_qc, >= n_excitations={n_excitations}) arrays, got {energies.shape} and "
                f"{strengths.shape}"
            )
        if self.user_ensemble is not None and len(energies) > len(self.user_ensemble):
            raise ValueError("more QC points than ensemble geometries")
        return {
            i: (energies[i, :n_excitations], strengths[i, :n_excitations])
            for i in range(len(energies))
        }

    def _equilibrium(self):
        if self.user_ensemble is not None:
            return self.molecule.copy(), None
        calc = methods(self.reference)  # its ground state: energy, forces, Hessian
        calc.set(nstates=0)  # PySCF's own count of excited roots
        return equilibrium_and_modes(self.molecule, calc, self.workdir)

    def _ensemble(self, eq, vibrations) -> np.ndarray:
        if self.user_ensemble is not None:
            return self.user_ensemble
        path = self.workdir / "ensemble.npy"
        if path.exists():
            return np.load(path)
        from ase_al.samplers import wigner

        samples = wigner(eq, vibrations, self.ensemble_size, self.temperature, seed=self.seed)
        positions = np.array([s.positions for s in samples])
        np.save(path, positions)
        return positions

    def _label(self, executor, eq, positions, indices, qc):
        """Reference ΔE and f for ``indices`` not in ``qc`` yet; ``qc`` saved after each."""
        todo = [i for i in indices if i not in qc]
        if not todo:
            return
        executor = executor()
        futures = {
            executor.submit(
                reference_excitations,
                self.reference,
                self.n_excitations,
                Atoms(eq.numbers, positions=positions[i]),
            ): i
            for i in todo
        }
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            try:
                qc[futures[future]] = future.result()
            except Exception as err:
                log.warning(
                    "reference excited states failed for point %d: %s", futures[future], err
                )
                self._first_error = self._first_error or f"point {futures[future]}: {err}"
                qc[futures[future]] = None
            self._save_qc(qc)

    def _save_qc(self, qc):
        done = sorted(i for i, v in qc.items() if v is not None)
        failed = sorted(i for i, v in qc.items() if v is None)
        with atomic_write(self.workdir / "qc.npz") as partial, open(partial, "wb") as handle:
            np.savez(
                handle,
                indices=np.array(done, dtype=int),
                excitation_energies=np.array([qc[i][0] for i in done]).reshape(
                    -1, self.n_excitations
                ),
                oscillator_strengths=np.array([qc[i][1] for i in done]).reshape(
                    -1, self.n_excitations
                ),
                failed=np.array(failed, dtype=int),
            )

    def _load_qc(self) -> dict:
        path = self.workdir / "qc.npz"
        if not path.exists():
            return {}
        with np.load(path) as data:
            qc = {
                int(i): (de, f)
                for i, de, f in zip(
                    data["indices"],
                    data["excitation_energies"],
                    data["oscillator_strengths"],
                    strict=True,
                )
            }
            qc.update({int(i): None for i in data["failed"]})
        return qc

    def _train(self, eq, positions, qc):
        done = sorted(i for i, v in qc.items() if v is not None)
        if len(done) < 2:
            raise ReferenceCalculationError(
                f"ML-NEA needs at least 2 successful excited-state calculations to train on; "
                f"{len(done)} of {len(qc)} succeeded"
                + (f" (first error: {self._first_error})" if self._first_error else "")
            )
        images = [Atoms(eq.numbers, positions=positions[i]) for i in done]
        de = np.array([qc[i][0] for i in done])
        f = np.array([qc[i][1] for i in done])
        models, errors = [], []
        for quantity in (de, f):
            for n in range(self.n_excitations):
                model = KREG(equilibrium=eq).train(images, targets=quantity[:, n], progress=False)
                models.append(model)
                errors.append(model.validation_rmse)
        rmse_geom = float(np.exp(np.mean(np.log(np.maximum(errors, 1e-12)))))
        return models, rmse_geom, len(done)

    # -- the workflow ------------------------------------------------------------------
    def run(self, energies_grid=None) -> dict:
        """Run (or resume) ML-NEA; returns the spectra and the convergence history.

        Returns a dict with ``energies`` (eV), ``wavelengths`` (nm), ``cross_section`` (ML-NEA,
        Å²), ``qc_cross_section`` (QC-NEA over the labelled points), ``spc_cross_section``,
        ``n_qc``, ``history`` [(N, RMSE_geom)], ``converged``, ``stop_reason`` (why the
        iteration ended: converged, or the points ran out) and ``timings`` (wall seconds in
        QC calculations of this call, model training, and prediction of the ensemble).
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        eq, vibrations = self._equilibrium()
        positions = self._ensemble(eq, vibrations)
        if self.user_qc:
            # the user's labelled points come first, then the rest in random order
            rest = np.arange(len(self.user_qc), len(positions))
            order = np.concatenate(
                [np.arange(len(self.user_qc)), np.random.default_rng(self.seed).permutation(rest)]
            )
        else:
            order = np.random.default_rng(self.seed).permutation(len(positions))
        qc = {**self._load_qc(), **self.user_qc}
        # the rRMSE iteration runs over the user's points too (step by step, as MLatom does);
        # a resumed run starts where its computed points left off
        computed = len(set(qc) - set(self.user_qc))
        n_requested = max(self.step, len(self.user_qc) + computed) if computed else self.step
        if self.reference is None:  # nothing can be labelled: the user's points are all
            limit = len(self.user_qc)
            n_requested = min(n_requested, limit)
        else:
            limit = min(self.max_points, len(positions))
        previous, converged, iteration = None, False, 0
        timings = {"qc": 0.0, "training": 0.0, "prediction": 0.0}

        def pool():  # the default pool starts at the first QC point, not for a resumed run
            return default_executor() if self.executor is None else self.executor

        while True:
            iteration += 1
            if self.reference is not None:
                started = time.perf_counter()
                self._label(pool, eq, positions, order[:n_requested].tolist(), qc)
                timings["qc"] += time.perf_counter() - started
            subset = {i: qc[i] for i in order[:n_requested].tolist() if i in qc}
            started = time.perf_counter()
            models, rmse_geom, n_done = self._train(eq, positions, subset)
            timings["training"] += time.perf_counter() - started
            self.history.append((n_done, rmse_geom))
            rrmse = None if previous is None else (rmse_geom - previous) / rmse_geom
            log.info(
                "ML-NEA iteration %d: train_number = %d; RMSE_geom = %.6g; rRMSE = %s",
                iteration,
                n_done,
                rmse_geom,
                "n/a" if rrmse is None else f"{rrmse:.4f}",
            )
            if rrmse is not None and abs(rrmse) < self.rrmse_threshold:
                converged = True
                stop = (
                    f"converged: rRMSE {rrmse:.3f} below {self.rrmse_threshold} at {n_done} points"
                )
                break
            if n_requested >= limit:
                stop = (
                    f"not converged: the {limit} QC points "
                    + ("given" if self.reference is None else "allowed (max_points)")
                    + " are used up"
                )
                break
            previous = rmse_geom
            n_requested = min(n_requested + self.step, limit)
        log.info("ML-NEA %s", stop)
        ensemble = [Atoms(eq.numbers, positions=p) for p in positions]
        started = time.perf_counter()
        predictions = np.array([m.predict(ensemble, forces=False)["energy"] for m in models])
        timings["prediction"] = time.perf_counter() - started
        de_ml = predictions[: self.n_excitations].T
        f_ml = np.clip(predictions[self.n_excitations :].T, 0.0, None)  # f ≥ 0 physically
        if energies_grid is None:
            low, high = max(de_ml.min() - 1.0, 0.1), de_ml.max() + 1.0
            if self.grid_step is None:
                energies_grid = np.linspace(low, high, 1000)
            else:
                energies_grid = np.arange(low, high + 0.5 * self.grid_step, self.grid_step)
        done = sorted(i for i, v in subset.items() if v is not None)
        de_qc = np.array([qc[i][0] for i in done])
        f_qc = np.array([qc[i][1] for i in done])
        spc = None
        if self.reference is not None:
            de_eq, f_eq = reference_excitations(self.reference, self.n_excitations, eq)
            spc = cross_section(de_eq, f_eq, energies_grid, self.spc_delta)
        elif self.equilibrium_excitations is not None:
            spc = cross_section(*self.equilibrium_excitations, energies_grid, self.spc_delta)
        result = {
            "spc_cross_section": spc,
            "energies": np.asarray(energies_grid),
            "wavelengths": wavelengths(energies_grid),
            "cross_section": cross_section(de_ml, f_ml, energies_grid, self.delta),
            "qc_cross_section": cross_section(de_qc, f_qc, energies_grid, self.qc_delta),
            "n_qc": len(done),
            "timings": timings,
            "history": self.history,
            "converged": converged,
            "stop_reason": stop,
        }
        self._write(result)
        return result

    def _write(self, result) -> None:
        out = self.workdir / "cross-section"
        out.mkdir(parents=True, exist_ok=True)
        spectra = {"ml-nea": result["cross_section"], "qc-nea": result["qc_cross_section"]}
        if result["spc_cross_section"] is not None:
            spectra["spc"] = result["spc_cross_section"]
        for name, sigma in spectra.items():
            with atomic_write(out / f"cross-section_{name}.dat") as partial:
                np.savetxt(
                    partial,
                    np.column_stack([result["energies"], result["wavelengths"], sigma]),
                    header="DE/eV  lambda/nm  sigma/A^2",
                    fmt="%.6f %.4f %.8e",
                )
        with atomic_write(self.workdir / "summary.json") as partial:
            partial.write_text(
                json.dumps(
                    {
                        "n_qc": result["n_qc"],
                        "timings_s": result["timings"],
                        "history": result["history"],
                        "converged": result["converged"],
                        "reference": self.reference,
                        "n_excitations": self.n_excitations,
                        "ensemble_size": len(self.user_ensemble)
                        if self.user_ensemble is not None
                        else self.ensemble_size,
                    }
                )
            )
        from matplotlib.figure import Figure  # no pyplot: the user's backend stays as it is

        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        ax.plot(result["energies"], result["cross_section"], label="ML-NEA")
        if self.plot_qcnea:
            ax.plot(
                result["energies"],
                result["qc_cross_section"],
                "--",
                label=f"QC-NEA ({result['n_qc']} points)",
            )
        if self.plot_spc and result["spc_cross_section"] is not None:
            ax.plot(result["energies"], result["spc_cross_section"], ":", label="SPC")
        title = f"{self.reference or 'user QC data'}, {self.n_excitations} states"
        ax.set(xlabel="E / eV", ylabel="σ / Å²", title=title)
        ax.legend()
        fig.tight_layout()
        with atomic_write(out / "plot.png") as partial:
            fig.savefig(partial, dpi=110, format="png")
