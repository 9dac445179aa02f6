import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from conftest import numerical_forces

from ase_al.calculators import Committee


def members():
    return [LennardJones(sigma=1.0, epsilon=0.1), LennardJones(sigma=1.1, epsilon=0.12), EMT()]


def single(calc, atoms):
    work = atoms.copy()
    work.calc = calc
    return work.get_potential_energy(), work.get_forces()


def test_mean_spread_and_forces():
    atoms = molecule("CH4")
    committee = Committee(members())
    atoms.calc = committee
    parts = [single(m, atoms) for m in members()]
    energies = np.array([e for e, _ in parts])
    assert atoms.get_potential_energy() == pytest.approx(energies.mean())
    assert committee.get_property("energy_uncertainty", atoms) == pytest.approx(energies.std())
    np.testing.assert_allclose(atoms.get_forces(), np.mean([f for _, f in parts], axis=0))
    np.testing.assert_allclose(atoms.get_forces(), numerical_forces(atoms, committee), atol=1e-5)


def test_physics_informed_pair_uses_main_model_only():
    atoms = molecule("CH4")
    main, aux = members()[:2]
    pair = Committee.physics_informed(main, aux)
    (e_main, f_main), (e_aux, _) = single(main, atoms), single(aux, atoms)
    result = pair.predict([atoms, atoms])
    np.testing.assert_allclose(result["energy"], e_main)
    np.testing.assert_allclose(result["forces"][0], f_main)
    np.testing.assert_allclose(result["energy_uncertainty"], abs(e_main - e_aux))


def test_bad_committees():
    with pytest.raises(ValueError, match="at least two"):
        Committee([EMT()])
    with pytest.raises(ValueError, match="weights"):
        Committee(members(), weights=[1, 1])
