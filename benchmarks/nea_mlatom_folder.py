"""MLatom's ML-NEA tutorial folder, made with ase-al's own TDDFT, run with the five-line input.

    python benchmarks/nea_mlatom_folder.py [--reference TD-B3LYP/6-31G*] [--ensemble 2000]
        [--qc-points 400] [--n-excitations 5] [--workdir DIR]

Writes the folder as MLatom's tutorial has it: ``eq.xyz`` (the B3LYP/6-31G* equilibrium of
water), ``xyz.dat`` (a 0 K Wigner ensemble whose first geometry is the equilibrium, as
Newton-X's are), ``E1.dat … En.dat`` (excitation energies, eV) and ``f1.dat … fn.dat``
(oscillator strengths) of the first ``--qc-points`` geometries, one value per line. Then runs
``ase-al nea.inp`` with MLatom's input::

    cross-section
    Nexcitations=N
    plotQCNEA
    plotQCSPC
    deltaQCNEA=0.05

and reports how many QC points the rRMSE iteration needed (or that they ran out), and the
band integral ∫σ dE of the ML-NEA spectrum (2000 geometries) against the QC-NEA spectrum of all
the computed points (the acceptance: within 5 %). Results in
``benchmarks/results/nea_mlatom_folder.json``. The QC data are computed once per folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _results import write_result
from ase.build import molecule
from ase.io import write

import ase_al
from ase_al.labelling import default_executor
from ase_al.spectra.mlnea import reference_excitations


def make_folder(args, work: Path) -> float:
    """The tutorial folder; returns the wall time of the QC calculations (s)."""
    if (work / f"f{args.n_excitations}.dat").exists():
        return float("nan")
    ground = args.reference.split("-", 1)[1]  # TD-B3LYP/6-31G* -> B3LYP/6-31G*
    calc = ase_al.methods(ground)
    eq = ase_al.optimize_geometry(molecule("H2O"), calc, fmax=1e-3)
    ensemble = ase_al.samplers.wigner(eq, ase_al.freq(eq, calc), args.ensemble, seed=0)
    ensemble[0] = eq.copy()
    eq.calc = None
    write(work / "eq.xyz", eq, format="xyz")
    write(work / "xyz.dat", [a.copy() for a in ensemble], format="xyz")
    images = ensemble[: args.qc_points]
    start = time.perf_counter()
    pool = default_executor()
    results = list(
        pool.map(
            reference_excitations,
            [args.reference] * len(images),
            [args.n_excitations] * len(images),
            images,
            chunksize=10,
        )
    )
    qc_time = time.perf_counter() - start
    for k in range(args.n_excitations):
        np.savetxt(work / f"E{k + 1}.dat", [de[k] for de, _ in results])
        np.savetxt(work / f"f{k + 1}.dat", [f[k] for _, f in results])
    return qc_time


def band_integral(path: Path) -> float:
    table = np.loadtxt(path)
    return float(np.trapezoid(table[:, 2], table[:, 0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="TD-B3LYP/6-31G*")
    parser.add_argument("--ensemble", type=int, default=2000)
    parser.add_argument("--qc-points", type=int, default=400)
    parser.add_argument("--n-excitations", type=int, default=5)
    parser.add_argument("--workdir", default="nea_mlatom_folder")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    qc_time = make_folder(args, work)
    (work / "nea.inp").write_text(
        f"cross-section\nNexcitations={args.n_excitations}\nplotQCNEA\nplotQCSPC\ndeltaQCNEA=0.05\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ase_al.cli", "nea.inp"], cwd=work, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"ase-al nea.inp failed:\n{done.stderr[-2000:]}")
    log_text = (work / "crosssection.log").read_text()
    stop = [line for line in log_text.splitlines() if "ML-NEA:" in line][-1]
    folder = work / "mlnea" / "cross-section"
    ml = band_integral(folder / "cross-section_ml-nea.dat")
    # QC-NEA of all the computed points, with the ML-NEA broadening (0.01 eV) on the same grid
    from ase_al.spectra import cross_section

    grid = np.loadtxt(folder / "cross-section_ml-nea.dat")[:, 0]
    energies = np.array([np.loadtxt(work / f"E{k + 1}.dat") for k in range(args.n_excitations)])
    strengths = np.array([np.loadtxt(work / f"f{k + 1}.dat") for k in range(args.n_excitations)])
    qc_all = cross_section(energies.T, strengths.T, grid, 0.01)
    qc = float(np.trapezoid(qc_all, grid))
    figures = {
        "reference": args.reference,
        "ensemble": args.ensemble,
        "qc_points_given": args.qc_points,
        "n_excitations": args.n_excitations,
        "qc_wall_s": qc_time,
        "nea_wall_s": wall,
        "ml_nea_log": stop.split("ML-NEA:")[-1].strip(),
        "band_integral_ml_nea": ml,
        "band_integral_qc_nea_all": qc,
        "ratio": ml / qc,
        "spc_written": (folder / "cross-section_spc.dat").exists(),
    }
    print(
        f"ML-NEA from MLatom's folder layout ({args.reference}, {args.ensemble} geometries, "
        f"{args.qc_points} QC points): {figures['ml_nea_log']}\n"
        f"band integral ML-NEA {ml:.5g}, QC-NEA of all {args.qc_points} points {qc:.5g}: "
        f"ratio {ml / qc:.4f}; SPC written: {figures['spc_written']}; {wall:.0f} s"
    )
    write_result("nea_mlatom_folder", figures)


if __name__ == "__main__":
    main()
