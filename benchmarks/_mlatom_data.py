"""ASE structures -> MLatom molecular database (Hartree, Hartree/Å), for the peer harnesses.

Imported by the _mlatom_*.py scripts, which run in MLatom's own virtual environment."""

import mlatom as ml

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
