"""AIQM2 of ase-al against MLatom 3.25.5's, on the same structures, in the same run.

    python benchmarks/aiqm2_vs_mlatom.py [--peer-python PATH] [--dftd4bin PATH]

Seven molecules (water, methanol, ethanol, glycine, benzene, formaldehyde, acetic acid; ASE's
g2 geometries, glycine pre-optimised with GFN2-xTB). Prints per molecule the energy and force
differences (Hartree, Hartree/Å), the network spread of both codes, the time per structure
(energy + forces) of each, and how far each code's analytic gradient (x of atoms 0 and 1) is
from central differences of its own energies; writes benchmarks/results/aiqm2_vs_mlatom.json.
The peer runs in its own virtual environment with torch, torchani 2.2 and the dftd4 shim
(shared peer notes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.io import write
from ase.units import Hartree

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import write_result  # noqa: E402

GLYCINE = Atoms(
    "NCCOOHHHHH",
    positions=[
        (-0.50, 1.37, 0.0),
        (0.0, 0.0, 0.0),
        (1.52, 0.0, 0.0),
        (2.13, 1.05, 0.0),
        (2.15, -1.17, 0.0),
        (3.10, -1.05, 0.0),
        (-0.36, -0.51, 0.89),
        (-0.36, -0.51, -0.89),
        (-1.51, 1.36, 0.0),
        (-0.17, 1.87, 0.82),
    ],
)


def structures() -> dict[str, Atoms]:
    from ase.optimize import BFGS

    from ase_al.calculators import methods

    glycine = GLYCINE.copy()
    glycine.calc = methods("GFN2-xTB")
    BFGS(glycine, logfile=None).run(fmax=0.05, steps=200)
    glycine.calc = None
    names = {
        "water": "H2O",
        "methanol": "CH3OH",
        "ethanol": "CH3CH2OH",
        "benzene": "C6H6",
        "formaldehyde": "H2CO",
        "acetic acid": "CH3COOH",
    }
    found = {name: molecule(g2) for name, g2 in names.items()}
    found["glycine"] = glycine
    return found


def ours(frames) -> list[dict]:
    from ase_al.calculators import methods

    calc = methods("AIQM2")
    rows = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        start = time.perf_counter()
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        elapsed = time.perf_counter() - start
        fd = []
        for atom in (0, 1):
            shifted = []
            for sign in (1, -1):
                probe = atoms.copy()
                probe.positions[atom, 0] += sign * 1e-4
                probe.calc = calc
                shifted.append(probe.get_potential_energy() / Hartree)
            fd.append((shifted[0] - shifted[1]) / 2e-4)
        rows.append(
            {
                "fd_gradient_x01": fd,
                "energy": energy / Hartree,
                "gradient": (-forces / Hartree).tolist(),
                "std": calc.results["energy_uncertainty"] / Hartree,
                "seconds": elapsed,
            }
        )
    return rows


def peer(python: str, dftd4bin: str, frames) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "structures.extxyz"
        write(path, frames)
        out = subprocess.run(
            [python, str(HERE / "_mlatom_aiqm2.py"), str(path)],
            capture_output=True,
            text=True,
            env={**os.environ, "dftd4bin": dftd4bin},
        )
    if out.returncode:
        raise SystemExit(f"MLatom's AIQM2 failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_peer = os.environ.get(
        "MLATOM_PYTHON", str(HERE.parents[1] / "peer-venv" / "bin" / "python")
    )
    parser.add_argument("--peer-python", default=default_peer)
    parser.add_argument(
        "--dftd4bin",
        default=os.environ.get("dftd4bin", str(HERE.parents[1] / "dftd4_shim.py")),
        help="an executable dftd4 (or the shared peer notes' dftd4_shim.py)",
    )
    args = parser.parse_args()
    for what, path in (("MLatom's Python", args.peer_python), ("dftd4 program", args.dftd4bin)):
        if not Path(path).exists():
            raise SystemExit(f"{what} not found at {path}: set it up as in shared/peer/README.md")
    found = structures()
    names, frames = list(found), list(found.values())
    mine, theirs = ours(frames), peer(args.peer_python, args.dftd4bin, frames)
    results = {}
    print(
        f"{'molecule':14s} {'|dE| Ha':>9s} {'max|dF| Ha/A':>12s} {'std ours':>9s} "
        f"{'std MLatom':>10s} {'s ours':>7s} {'s MLatom':>8s} {'FD-err ours':>11s} "
        f"{'FD-err MLatom':>13s}"
    )
    for name, a, b in zip(names, mine, theirs, strict=False):
        d_energy = abs(a["energy"] - b["energy"])
        d_force = float(np.abs(np.subtract(a["gradient"], b["gradient"])).max())
        # each code's analytic gradient (x of atoms 0 and 1) against its own energies
        fd_ours = max(abs(a["gradient"][i][0] - a["fd_gradient_x01"][i]) for i in (0, 1))
        fd_peer = max(abs(b["gradient"][i][0] - b["fd_gradient_x01"][i]) for i in (0, 1))
        results[name] = {
            "energy_ase_al_hartree": a["energy"],
            "energy_mlatom_hartree": b["energy"],
            "energy_difference_hartree": d_energy,
            "max_gradient_difference_hartree_per_A": d_force,
            "std_ase_al_hartree": a["std"],
            "std_mlatom_hartree": b["std"],
            "seconds_ase_al": a["seconds"],
            "seconds_mlatom": b["seconds"],
            "gradient_vs_own_finite_differences_ase_al": fd_ours,
            "gradient_vs_own_finite_differences_mlatom": fd_peer,
        }
        print(
            f"{name:14s} {d_energy:9.2e} {d_force:12.2e} {a['std']:9.2e} {b['std']:10.2e} "
            f"{a['seconds']:7.3f} {b['seconds']:8.3f} {fd_ours:11.1e} {fd_peer:13.1e}"
        )
    t_ours = float(np.median([a["seconds"] for a in mine]))
    t_peer = float(np.median([b["seconds"] for b in theirs]))
    print(
        f"median time per structure: ase-al {t_ours:.3f} s, MLatom {t_peer:.3f} s "
        f"(ratio {t_ours / t_peer:.3f})"
    )
    results["median_seconds"] = {"ase_al": t_ours, "mlatom": t_peer, "ratio": t_ours / t_peer}
    path = write_result(
        "aiqm2_vs_mlatom",
        results,
        peer={"name": "MLatom", "version": "3.25.5", "python": args.peer_python},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
