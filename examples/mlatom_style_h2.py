"""An MLatom user's active-learning script, run as it is written: no ``__main__`` guard.

    python examples/mlatom_style_h2.py [WORKDIR] [REFERENCE]
    (defaults: al_mlatom_style, "B3LYP/6-31G*" as in MLatom's tutorial; "GFN2-xTB" is the
    quick reference, no PySCF needed)

MLatom's tutorial script, with ``import mlatom as ml`` replaced by ``import ase_al as ml``
and an ASE molecule: the same calls, the same keyword structure (``sampler_kwargs`` with
``initcond_sampler`` / ``initcond_sampler_kwargs``, ``uq_threshold`` in Hartree), the same
defaults. Every keyword is translated into ase-al's ``ActiveLearner`` and checked before the
first reference calculation (the table: ``ase_al.mlatom_compat.keyword_table()``).
Reference calculations run in worker processes that do not re-run this script.
"""

import sys

from ase import Atoms

import ase_al as ml

workdir = sys.argv[1] if len(sys.argv) > 1 else "al_mlatom_style"
dft = ml.methods(sys.argv[2] if len(sys.argv) > 2 else "B3LYP/6-31G*")

h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])
optmol = ml.optimize_geometry(h2, dft)
freq = ml.freq(optmol, dft)
print(f"reference H2: r = {optmol.get_distance(0, 1):.4f} Å, ν = {freq.frequencies[0]:.1f} cm-1")

sampler_kwargs = {
    "initcond_sampler": "wigner",
    "initcond_sampler_kwargs": {
        "molecule": optmol,
        "number_of_initial_conditions": 50,
        "initial_temperature": 300,
    },
    "maximum_propagation_time": 100.0,
    "time_step": 0.5,
    "uq_threshold": 0.00005,  # Hartree, as in MLatom (1.4 meV)
}
model = ml.al(
    molecule=optmol,
    ml_model="KREG",
    sampler_kwargs=sampler_kwargs,
    initdata_sampler_kwargs={
        "molecule": optmol,
        "number_of_initial_conditions": 25,
        "initial_temperature": 500,  # initial data hotter than the MD initial conditions
    },
    min_new_points=5,
    max_iterations=10,
    reference_method=dft,
    working_directory=workdir,
)

run = ml.ALRun(workdir)
print(f"iterations: {len(run.history)}, converged: {run.converged}")
main = model.members[0]
eq_ml = ml.optimize_geometry(optmol, main, fmax=1e-4)
nu_ml = ml.freq(eq_ml, main).frequencies[0]
print(f"KREG H2: r = {eq_ml.get_distance(0, 1):.4f} Å, ν = {nu_ml:.1f} cm-1")
