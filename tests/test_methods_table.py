"""The methods table's newer names: Sparrow semi-empirics, CCSD, CCSD(T), ADC(2), ωB97X."""

import pickle

import numpy as np
import pytest
from ase.build import molecule
from ase.units import Bohr, Hartree
from conftest import directional_forces, numerical_forces

from ase_al.calculators import available, methods


def pyscf_rhf(atoms, basis):
    """PySCF's RHF of ``atoms``, converged tightly: the direct reference for the checks."""
    from pyscf import gto, scf

    mol = gto.M(
        atom=list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist(), strict=True)),
        basis=basis,
        verbose=0,
    )
    return scf.RHF(mol).run(conv_tol=1e-10)


def distorted(name="H2O", seed=1):
    atoms = molecule(name)
    atoms.positions += np.random.default_rng(seed).normal(0, 0.05, atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("name", ["PM6", "AM1"])
def test_sparrow_equals_sparrow_called_directly_and_forces_are_gradients(name):
    pytest.importorskip("scine_sparrow")
    import scine_sparrow  # noqa: F401
    import scine_utilities as su

    atoms = distorted("CH3OH")
    calc = methods(name)
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    direct = su.core.ModuleManager.get_instance().get("calculator", name)
    direct.log = su.core.Log.silent()
    direct.settings["self_consistence_criterion"] = 1e-9
    direct.structure = su.AtomCollection(
        [su.ElementInfo.element_from_symbol(s) for s in atoms.get_chemical_symbols()],
        atoms.positions / Bohr,
    )
    direct.set_required_properties([su.Property.Energy, su.Property.Gradients])
    results = direct.calculate()
    assert energy == pytest.approx(results.energy * Hartree, abs=1e-8)
    np.testing.assert_allclose(forces, -results.gradients * Hartree / Bohr, atol=1e-8)
    assert np.abs(forces).max() > 0.1
    np.testing.assert_allclose(forces, numerical_forces(atoms, calc, delta=1e-4), atol=2e-3)
    # shipped to a worker process, it rebuilds its Sparrow handle
    copy = pickle.loads(pickle.dumps(calc))
    probe = atoms.copy()
    probe.calc = copy
    assert probe.get_potential_energy() == pytest.approx(energy, abs=1e-8)
    # charge and spin as elsewhere: the methyl radical is a doublet by default
    radical = molecule("CH3")
    radical.calc = methods(name)
    assert np.isfinite(radical.get_potential_energy())
    with pytest.raises(ValueError, match="multiplicity 1 is impossible"):
        radical.calc = methods(name, multiplicity=1)
        radical.get_potential_energy()


def test_ccsd_t_equals_pyscf_and_ccsd_forces_are_gradients():
    from pyscf import cc

    atoms = distorted()
    atoms.calc = methods("CCSD(T)/cc-pVDZ")
    energy = atoms.get_potential_energy()
    mf = pyscf_rhf(atoms, "cc-pvdz")
    ccsd = cc.CCSD(mf)
    ccsd.conv_tol = 1e-9
    ccsd.run()
    assert energy / Hartree == pytest.approx(ccsd.e_tot + ccsd.ccsd_t(), abs=1e-7)
    # analytic CCSD forces against finite differences along random directions (STO-3G:
    # the gradient code is what is checked)
    small = distorted()
    calc = methods("CCSD/STO-3G")
    small.calc = calc
    analytic = small.get_forces()
    directions, numerical = directional_forces(small, calc, n_directions=2)
    np.testing.assert_allclose(np.einsum("ij,dij->d", analytic, directions), numerical, atol=2e-3)


def test_adc2_excitations_equal_pyscf_and_feed_ml_nea(tmp_path):
    from pyscf import adc

    atoms = molecule("H2O")
    calc = methods("ADC(2)/def2-SVP", n_states=4)
    atoms.calc = calc
    energies = calc.get_property("excitation_energies", atoms)
    strengths = calc.get_property("oscillator_strengths", atoms)
    mf = pyscf_rhf(atoms, "def2-svp")
    solver = adc.ADC(mf)
    solver.method, solver.method_type, solver.verbose = "adc(2)", "ee", 0
    e, _, f, _ = solver.kernel(nroots=3)[:4]
    np.testing.assert_allclose(energies, np.asarray(e) * Hartree, atol=1e-6)
    np.testing.assert_allclose(strengths, f, atol=1e-6)
    assert 6 < energies[0] < 10  # water's first singlet, eV
    # the ground state is MP2
    mp2 = molecule("H2O")
    mp2.calc = methods("MP2/def2-SVP")
    assert atoms.get_potential_energy() == pytest.approx(mp2.get_potential_energy(), abs=1e-6)
    with pytest.raises(Exception, match="no ADC\\(2\\) gradients"):
        calc.set(current_state=1)
        atoms.get_forces()
    # ML-NEA takes ADC(2) as its reference
    from ase_al.spectra import MLNEA

    job = MLNEA(
        molecule("H2O"),
        reference="ADC(2)/STO-3G",
        n_excitations=2,
        ensemble_size=60,
        step=20,
        max_points=40,
        delta=0.3,
        workdir=tmp_path,
    )
    result = job.run()
    assert result["n_qc"] == 40
    assert np.trapezoid(result["cross_section"], result["energies"]) > 0


def test_omega_spelling_and_names_in_the_table():
    atoms = molecule("H2")
    atoms.calc = methods("ωB97X/STO-3G")
    plain = molecule("H2")
    plain.calc = methods("wB97X/STO-3G")
    assert atoms.get_potential_energy() == pytest.approx(plain.get_potential_energy(), abs=1e-9)
    names = available()
    for name in ("AIQM2", "GFN2-xTB*", "PM6", "AM1", "DFTB3", "CCSD(T)/<basis>", "ADC(2)/<basis>"):
        assert name in names
    with pytest.raises(ValueError, match="unknown Sparrow method|unknown method"):
        methods("PM7")
