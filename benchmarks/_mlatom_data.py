"""ASE structures -> MLatom molecular database (Hartree, Hartree/Å), for the peer harnesses.

Imported by the _mlatom_*.py scripts, which run in MLatom's own virtual environment."""

import mlatom as ml
import numpy as np

HARTREE = 27.211386245988  # eV


def database(frames):
    """Energies and energy gradients of labelled ASE structures in MLatom's units."""
    db = ml.data.molecular_database()
    for atoms in frames:
        mol = ml.data.molecule.from_numpy(atoms.positions, atoms.numbers)
        mol.energy = atoms.get_potential_energy() / HARTREE
        mol.add_xyz_vectorial_property(-atoms.get_forces() / HARTREE, "energy_gradients")
        db.append(mol)
    return db


def prediction_errors(model, db):
    """Predict energies and gradients of ``db`` with an MLatom model; return the errors.

    Returns (energy error per structure / eV, force error per atom and axis / (eV/Å)), each
    predicted minus reference (forces = −gradients, so the force error has the opposite sign
    of the gradient error)."""
    model.predict(
        molecular_database=db,
        property_to_predict="estimated_energy",
        xyz_derivative_property_to_predict="estimated_energy_gradients",
    )
    energy = (db.get_properties("estimated_energy") - db.get_properties("energy")) * HARTREE
    gradient = db.get_xyz_vectorial_properties(
        "estimated_energy_gradients"
    ) - db.get_xyz_vectorial_properties("energy_gradients")
    return np.asarray(energy), -np.asarray(gradient) * HARTREE
