"""Δ-learning an AIQM-like composite: GFN2-xTB + ML corrections + D4 toward B3LYP/6-31G*.

    python examples/delta_gfn2_to_b3lyp.py [MOLECULE] [N_TRAIN] [CORRECTION] [TARGET]
    (defaults: CH3OH 150 ANI B3LYP/6-31G*; "H2O 40 KREG HF/6-31G" runs in well under a minute)

Samples the molecule at 600 K (Wigner), labels the structures with B3LYP/6-31G* (PySCF),
trains four corrections on target − GFN2-xTB − D4 and compares, on held-out structures, the
composite's and plain GFN2-xTB's errors against B3LYP. Saves the composite to
``delta_<molecule>/``, loadable with ``ase_al.methods("AIQM-like", model_dir=...)``.
"""

import sys

import numpy as np
from ase.build import molecule

import ase_al
from ase_al.calculators import Composite
from ase_al.labelling import label

name = sys.argv[1] if len(sys.argv) > 1 else "CH3OH"
n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 150
correction = sys.argv[3] if len(sys.argv) > 3 else "ANI"
target = sys.argv[4] if len(sys.argv) > 4 else "B3LYP/6-31G*"

eq = ase_al.optimize_geometry(molecule(name), ase_al.methods(target), fmax=1e-3)
vib = ase_al.freq(eq, ase_al.methods(target))
samples = ase_al.samplers.wigner(eq, vib, n_train + 30, temperature=600, seed=0)
images = label(samples, target).labelled
train, test = images[:n_train], images[n_train:]

settings = {"max_epochs": 400} if correction == "ANI" else {}
composite = Composite(
    baseline="GFN2-xTB", dispersion="B3LYP", correction=correction, correction_kwargs=settings
).train(train)
composite.save(f"delta_{name}")

energies = np.array([a.get_potential_energy() for a in test])
forces = np.array([a.get_forces() for a in test])
ours = composite.predict(test)
xtb_e, xtb_f = composite._fixed_parts(test)  # GFN2-xTB + D4 alone


def relative(e):  # relative energies: each method has its own zero
    d = (e - energies) - np.mean(e - energies)
    return 1000 * np.sqrt(np.mean(d**2))


print(f"{len(test)} held-out {name} structures, errors against {target}:")
print(
    f"  GFN2-xTB+D4           relative energies {relative(xtb_e):7.1f} meV, "
    f"forces {np.sqrt(np.mean((xtb_f - forces) ** 2)):.3f} eV/Å"
)
print(
    f"  composite ({correction:4})      relative energies {relative(ours['energy']):7.1f}"
    f" meV, forces {np.sqrt(np.mean((ours['forces'] - forces) ** 2)):.3f} eV/Å"
)
print(
    f"  composite absolute energy RMSE "
    f"{1000 * np.sqrt(np.mean((ours['energy'] - energies) ** 2)):.1f} meV; "
    f"mean uncertainty {1000 * ours['energy_uncertainty'].mean():.1f} meV"
)
