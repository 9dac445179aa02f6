"""Active learning of a KREG potential for H2 with GFN2-xTB as the reference.

    python examples/al_h2_gfn2.py [WORKDIR]     (default: al_h2)

The seed workflow of MLatom's AL tutorial with an embedded reference (tblite), so no
external program is needed. Re-running with the same WORKDIR resumes a killed run.
Then the final model is used like any ASE calculator: its optimised bond length and
harmonic frequency are compared with the reference's.
"""

import sys

from ase.build import molecule
from ase.io import read

import ase_al

workdir = sys.argv[1] if len(sys.argv) > 1 else "al_h2"
pair = ase_al.ActiveLearner(
    molecule("H2"),
    reference="GFN2-xTB",
    model="KREG",
    workdir=workdir,
    sampling=ase_al.Sampling(
        sampler="batch_md",
        n_trajectories=100,
        options={"max_time_fs": 300.0, "time_step_fs": 0.5},
    ),
).run()

main_model = pair.members[0]
reference = ase_al.methods("GFN2-xTB")
eq_ref = read(f"{workdir}/equilibrium.traj")
eq_ml = ase_al.optimize_geometry(eq_ref, main_model, fmax=1e-4)
nu_ref = ase_al.freq(eq_ref, reference).frequencies[0]
nu_ml = ase_al.freq(eq_ml, main_model).frequencies[0]
n_labels = len(ase_al.ALRun(workdir).labelled())
print(f"reference calculations: {n_labels}")
print(f"r(H-H): GFN2-xTB {eq_ref.get_distance(0, 1):.4f} Å, KREG {eq_ml.get_distance(0, 1):.4f} Å")
print(
    f"harmonic frequency: GFN2-xTB {nu_ref:.1f} cm-1, KREG {nu_ml:.1f} cm-1 "
    f"({100 * (nu_ml - nu_ref) / nu_ref:+.2f} %)"
)
print(f"labelled structures: {workdir}/labelled.db (ase db / ase gui); plots: {workdir}/*.png")
