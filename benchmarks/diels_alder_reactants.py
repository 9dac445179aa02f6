"""Where a Diels-Alder learning run's networks put the reactants: every iteration's main
network along the complex's dissociation, and where the complex ends when optimised on it.

    python benchmarks/diels_alder_reactants.py WORKDIR [WORKDIR ...] [--name NAME]

WORKDIR is a run of ``examples/diels_alder.py WORKDIR 100 100 ANI`` (finished or running).
For each finished iteration of ``WORKDIR/al``:

- the main network's errors (kcal/mol, relative to the complex) along GFN2-xTB's complex with
  ethene moved rigidly away from butadiene (``reactive_al.dissociation``: 0-10 Å), and the
  pair's uncertainty there;
- the iteration's own relaxation of the complex on the model (``relaxations/02.traj``, the
  learner's ``relax_starting_points``): how far the model's energy fell, GFN2-xTB's energy at
  the end relative to the complex, and the closest C-C contact between the two molecules
  there (3.70 Å in GFN2-xTB's complex);
- the main network's own barrier (``ase_al.reactions.barrier`` from GFN2-xTB's saddle point
  and complex; GFN2-xTB 7.0 kcal/mol), its barrier at GFN2-xTB's two geometries, and
  GFN2-xTB's energy at the network's own complex minimum (relative to GFN2-xTB's complex).

About 15 s per iteration (GFN2-xTB single points, no trajectories); writes
``results/<NAME>.json`` (default ``diels_alder_reactants``).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_result  # noqa: E402
from reactive_al import (  # noqa: E402
    SHIFTS,
    dissociation,
    dissociation_errors,
    ethene_and_butadiene,
)


def judge(work: Path) -> dict:
    from ase import units
    from ase.io import read

    import ase_al
    from ase_al.reactions import barrier, species

    kcal_mol = units.kcal / units.mol
    saddle, reactants, cyclohexene = read(work / "stationary.traj", ":")
    frames, reference = dissociation(reactants)
    ethene, rest = ethene_and_butadiene(reactants)
    gfn2 = ase_al.methods("GFN2-xTB")
    run = ase_al.ALRun(work / "al")
    starts = len(list((work / "al" / "starting_points").iterdir()))
    rows = []
    for entry in run.history:
        k = entry["iteration"]
        pair = run.model(iteration=k)
        uncertainty = pair.predict(frames, forces=False)["energy_uncertainty"]
        row = {
            "iteration": k,
            "labels": entry["n_train"],
            "threshold_eV": entry["threshold"],
            "certain_trajectories": entry.get("n_certain"),
            "dissociation_errors_kcal_mol": dissociation_errors(pair, frames, reference),
            "dissociation_uncertainty_kcal_mol": {
                f"{s:g}": round(float(u) / kcal_mol, 2)
                for s, u in zip(SHIFTS, uncertainty, strict=True)
            },
        }
        path = work / "al" / f"iteration_{k}" / "relaxations" / "02.traj"
        if path.exists():
            relaxation = read(path, ":")
            end = relaxation[-1].copy()
            end.info.clear()
            end.calc = gfn2
            carbons = [[i for i in part if end[i].symbol == "C"] for part in (ethene, rest)]
            contact = end.get_all_distances()[np.ix_(*carbons)]
            row["complex_relaxed_on_the_model"] = {
                "steps": len(relaxation) - 1,
                "model_energy_change_kcal_mol": round(
                    (relaxation[-1].info["model_energy"] - relaxation[0].info["model_energy"])
                    / kcal_mol,
                    2,
                ),
                "gfn2_energy_above_complex_kcal_mol": above_complex(end, reactants),
                "closest_C_C_contact_A": round(float(contact.min()), 2),
                "species": species(end),
            }
        main = pair.members[0]
        own = barrier(main, saddle, reactants)
        at_gfn2 = main.predict([saddle, reactants], forces=False)["energy"]
        minimum = own.minimum.copy()
        minimum.calc = gfn2
        row["learned_barrier"] = {
            "own_kcal_mol": round(own.energy / kcal_mol, 2),
            "at_gfn2_geometries_kcal_mol": round(float(at_gfn2[0] - at_gfn2[1]) / kcal_mol, 2),
            "own_complex_gfn2_above_complex_kcal_mol": above_complex(minimum, reactants),
            "own_complex_species": own.species,
            "problem": own.problem,
        }
        rows.append(row)
        apart = row["dissociation_errors_kcal_mol"]
        relaxed = row.get("complex_relaxed_on_the_model", {})
        print(
            f"{work.name} iteration {k:2d} ({row['labels']} labels): error moved apart "
            f"{apart['1']:+.1f} at 1 Å, {apart['10']:+.1f} at 10 Å; complex relaxed on the "
            f"model: {relaxed.get('model_energy_change_kcal_mol', float('nan')):+.1f} on it, "
            f"GFN2-xTB {relaxed.get('gfn2_energy_above_complex_kcal_mol') or float('nan'):+.1f}, "
            f"C-C {relaxed.get('closest_C_C_contact_A', float('nan')):.2f} Å; learned barrier "
            f"{row['learned_barrier']['own_kcal_mol']:.2f} (GFN2-xTB 7.00)",
            flush=True,
        )
    return {
        "workdir": str(work),
        "starting_structures": starts,
        "gfn2_dissociation_kcal_mol": {
            f"{s:g}": round(float(x), 2) for s, x in zip(SHIFTS, reference, strict=True)
        },
        "iterations": rows,
    }


def above_complex(atoms, reactants) -> float | None:
    """kcal/mol: GFN2-xTB's energy at ``atoms`` (its calculator set) above its complex; None
    where its SCF does not converge there (a network's well at an unphysical geometry)."""
    from ase import units

    from ase_al.errors import ReferenceCalculationError

    try:
        energy = atoms.get_potential_energy()
    except ReferenceCalculationError:
        return None
    return round((energy - reactants.info["reference_energy"]) / (units.kcal / units.mol), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="+", type=Path)
    parser.add_argument("--name", default="diels_alder_reactants")
    args = parser.parse_args()
    runs = {}
    for work in args.workdirs:
        if not (work / "al" / "state.json").exists():
            sys.exit(f"{work}: no learning run there (no al/state.json)")
        runs[work.name] = judge(work)
    write_result(args.name, {"task": "Diels-Alder: the learned reactants", "runs": runs})


if __name__ == "__main__":
    main()
