"""Check of the NEA cross section against MLatom 3.25.5's ``uvvis.nea`` on the same input.

    python benchmarks/cross_section_vs_mlatom.py [--peer-python PATH]

A synthetic ensemble (500 points, 3 states, ΔE around 5-7 eV, f from 0 to 0.3, seed 0) goes
through both implementations on the same wavelength grid; prints the largest relative
difference of σ (Å²) and the ratio of the band integrals.
"""

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ase_al.spectra import cross_section, wavelengths

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peer-python",
        default=os.environ.get(
            "MLATOM_PYTHON", str(HERE.parents[1] / "peer-venv" / "bin" / "python")
        ),
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    de = np.array([5.0, 6.0, 7.0]) + rng.normal(0, 0.25, (500, 3))
    f = rng.uniform(0, 0.3, (500, 3))
    wavelengths_nm = np.arange(150.0, 300.0, 0.2)
    delta = 0.05
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            inp,
            excitation_energies=de,
            oscillator_strengths=f,
            wavelengths_nm=wavelengths_nm,
            delta=delta,
        )
        subprocess.run(
            [args.peer_python, str(HERE / "_mlatom_cross_section.py"), str(inp), str(out)],
            check=True,
            capture_output=True,
        )
        peer = np.load(out)
        ours = cross_section(de, f, peer["energies"], delta)
        grid_nm = wavelengths(peer["energies"])
    significant = peer["cross_section"] > 1e-3 * peer["cross_section"].max()
    relative = np.abs(ours[significant] / peer["cross_section"][significant] - 1)
    order = np.argsort(peer["energies"])
    ratio = np.trapezoid(ours[order], peer["energies"][order]) / np.trapezoid(
        peer["cross_section"][order], peer["energies"][order]
    )
    print(
        f"grid {grid_nm.min():.0f}-{grid_nm.max():.0f} nm, {len(grid_nm)} points, delta {delta} eV"
    )
    print(f"max relative difference of sigma (where sigma > 1e-3 max): {relative.max():.2e}")
    print(f"band integral ratio ase-al / MLatom: {ratio:.6f}")


if __name__ == "__main__":
    main()
