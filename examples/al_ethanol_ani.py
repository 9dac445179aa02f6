"""Active learning of an ANI (or MACE) potential for ethanol with GFN2-xTB, then a geometry
optimisation and frequencies with the final model.

    python examples/al_ethanol_ani.py [MODEL] [WORKDIR] [FAST]
    (defaults: ANI al_ethanol; a third argument "fast" runs a small demonstration in minutes)

The networks train from scratch at every iteration (physics-informed pair: main model on
energies and forces, auxiliary on energies only); `ase gui WORKDIR/labelled.db` shows the
labelled structures. Plan on about an hour for the full run on 2 cores.
"""

import sys

import numpy as np
from ase.build import molecule

import ase_al

model = sys.argv[1] if len(sys.argv) > 1 else "ANI"
workdir = sys.argv[2] if len(sys.argv) > 2 else "al_ethanol"
fast = len(sys.argv) > 3 and sys.argv[3] == "fast"
settings = {"max_epochs": 60 if fast else 500}
pair = ase_al.ActiveLearner(
    molecule("CH3CH2OH"),
    reference="GFN2-xTB",
    model=ase_al.calculators.model_class(model)(**settings),  # ANI(max_epochs=...) or MACE
    workdir=workdir,
    initial_data=ase_al.InitialData(batch=50, max_points=100 if fast else 1000),
    sampling=ase_al.Sampling(
        n_trajectories=20 if fast else 100, options={"max_time_fs": 100.0 if fast else 1000.0}
    ),
    selection=ase_al.Selection(max_iterations=1 if fast else 20),
).run()

main_model = pair.members[0]
reference = ase_al.methods("GFN2-xTB")
eq_ref = ase_al.optimize_geometry(molecule("CH3CH2OH"), reference)
eq_ml = ase_al.optimize_geometry(eq_ref, main_model, fmax=1e-3)
rmsd = np.sqrt(np.mean(np.sum((eq_ml.positions - eq_ref.positions) ** 2, axis=1)))
nu_ref = ase_al.freq(eq_ref, reference).frequencies
nu_ml = ase_al.freq(eq_ml, main_model, ir=False).frequencies
print(f"{model}: optimised geometry within {rmsd:.3f} Å (RMSD) of GFN2-xTB's")
print(
    f"frequencies: mean absolute deviation {np.mean(np.abs(nu_ml - nu_ref)):.0f} cm-1 "
    f"over {len(nu_ref)} modes"
)
