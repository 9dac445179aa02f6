"""The seed's script, translated: active learning of KREG for H2 with B3LYP/6-31G*.

    python examples/al_h2_b3lyp.py [WORKDIR] [REFERENCE] [fast]
    (defaults: al_h2_b3lyp, "B3LYP/6-31G*"; "HF/STO-3G" with "fast" is the quick mode:
    fewer and shorter sampling trajectories)

MLatom's tutorial reads (MLatom 3 syntax)::

    mol = ml.data.molecule.from_xyz_string('2\\n\\nH 0 0 0\\nH 0 0 0.7')
    ml.al(molecule=mol,
          reference_method=ml.models.methods(method='B3LYP/6-31G*', program='pyscf'),
          ml_model='KREG',
          sampler='batch_md', sampler_kwargs={'maximum_propagation_time': 1000, ...})

and here, line by line, ``ase_al.al`` takes the same keywords with an ASE molecule and the
method by name (PySCF underneath). The final model is an ASE calculator: its bond length
and harmonic frequency are compared with the reference's.
"""

import sys

from ase.io import read

import ase_al
from ase_al.cli import read_molecule

workdir = sys.argv[1] if len(sys.argv) > 1 else "al_h2_b3lyp"
reference = sys.argv[2] if len(sys.argv) > 2 else "B3LYP/6-31G*"
fast = len(sys.argv) > 3 and sys.argv[3] == "fast"
mol = read_molecule("2\n\nH 0 0 0\nH 0 0 0.7")
pair = ase_al.al(
    molecule=mol,
    reference_method=reference,
    ml_model="KREG",
    sampler="batch_md",
    sampler_kwargs={
        "maximum_propagation_time": 100.0 if fast else 300.0,
        "time_step": 0.5,
        "number_of_trajectories": 30 if fast else 100,
    },
    working_directory=workdir,
)
main_model = pair.members[0]
eq_ref = read(f"{workdir}/equilibrium.traj")
eq_ml = ase_al.optimize_geometry(eq_ref, main_model, fmax=1e-4)
nu_ref = ase_al.freq(eq_ref, ase_al.methods(reference)).frequencies[0]
nu_ml = ase_al.freq(eq_ml, main_model).frequencies[0]
print(
    f"r(H-H): {reference} {eq_ref.get_distance(0, 1):.4f} Å, KREG {eq_ml.get_distance(0, 1):.4f} Å"
)
print(
    f"harmonic frequency: {reference} {nu_ref:.1f} cm-1, KREG {nu_ml:.1f} cm-1 "
    f"({100 * (nu_ml - nu_ref) / nu_ref:+.2f} %)"
)
