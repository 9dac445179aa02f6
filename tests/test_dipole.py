"""ML dipoles through atomic charges, and IR intensities from them."""

import numpy as np
import pytest
from ase.build import molecule
from scipy.spatial.transform import Rotation

import ase_al
from ase_al.calculators.dipole import KREGDipole
from ase_al.simulations import IR_KM_PER_MOL, finite_difference_dipole_derivatives


@pytest.fixture(scope="module")
def water():
    calc = ase_al.methods("GFN2-xTB")
    eq = ase_al.optimize_geometry(molecule("H2O"), calc)
    vib = ase_al.freq(eq, calc)
    samples = ase_al.samplers.wigner(eq, vib, 100, temperature=300, seed=4)
    rotations = Rotation.random(len(samples), random_state=1).as_matrix()
    dipoles = []
    for atoms, rotation in zip(samples, rotations, strict=True):
        atoms.positions = atoms.positions @ rotation.T  # every orientation
        atoms.calc = calc
        dipoles.append(atoms.get_dipole_moment())
    return eq, vib, samples, np.array(dipoles), calc


def test_dipoles_of_rotated_molecules(water, tmp_path):
    _, _, samples, dipoles, _ = water
    model = KREGDipole().train(samples[:80], dipoles[:80])
    predicted = model.predict(samples[80:])
    error = np.sqrt(np.mean((predicted["dipole"] - dipoles[80:]) ** 2))
    # the dipole (~0.5 e·Å) points every way; its components spread by ~0.3 e·Å
    assert error < 0.05 * np.sqrt(np.mean(dipoles[80:] ** 2)) * np.sqrt(3)
    np.testing.assert_allclose(predicted["charges"].sum(axis=1), 0.0, atol=1e-12)
    assert np.all(predicted["charges"][:, 0] < 0)  # oxygen negative
    model.save(tmp_path / "dipole.npz")
    again = KREGDipole.load(tmp_path / "dipole.npz").predict(samples[80:])
    np.testing.assert_array_equal(again["dipole"], predicted["dipole"])
    with pytest.raises(ValueError, match="order"):
        model.predict([molecule("NH3")])


def test_ir_intensities_from_the_ml_dipole(water):
    eq, vib, samples, dipoles, calc = water
    model = KREGDipole().train(samples, dipoles)
    ml = finite_difference_dipole_derivatives(eq, model)
    modes = vib.mass_weighted_modes / np.sqrt(np.repeat(eq.get_masses(), 3))[None, :]
    intensities = IR_KM_PER_MOL * np.sum((modes @ ml) ** 2, axis=1)
    # the reference intensities come from GFN2-xTB dipole derivatives; the model saw only
    # dipoles of 100 distorted, rotated waters: intensities within 15 %
    np.testing.assert_allclose(intensities, vib.ir_intensities, rtol=0.15)
