import numpy as np
import pytest
from ase import units
from ase.build import molecule

from ase_al import freq, methods, optimize_geometry


@pytest.fixture(scope="module")
def water_gfn2():
    calc = methods("GFN2-xTB")
    eq = optimize_geometry(molecule("H2O"), calc, fmax=1e-4)
    return eq, calc, freq(eq, calc)


def test_h2_b3lyp_bond_length_and_frequency():
    calc = methods("B3LYP/6-31G*")
    eq = optimize_geometry(molecule("H2"), calc)
    assert eq.info["optimization_converged"]
    assert eq.get_distance(0, 1) == pytest.approx(0.7428, abs=1e-3)
    vib = freq(eq, calc)
    assert vib.linear and vib.frequencies.shape == (1,)
    assert vib.frequencies[0] == pytest.approx(4453, abs=15)
    # a homonuclear diatomic has no dipole derivative: IR inactive
    assert vib.ir_intensities[0] < 1e-6


def test_water_gfn2_modes_and_ir(water_gfn2):
    _eq, _calc, vib = water_gfn2
    assert vib.frequencies.shape == (3,)
    assert np.all(vib.frequencies > 0)
    # bend ~1540, symmetric and antisymmetric stretches ~3640-3660 cm⁻¹ for GFN2-xTB
    assert 1400 < vib.frequencies[0] < 1700 and 3400 < vib.frequencies[1] < 3900
    assert np.all(vib.ir_intensities > 0)
    # inherited VibrationsData: 9 modes, the 6 rigid-body ones projected to zero
    all_modes = np.abs(vib.get_frequencies())
    assert np.sort(all_modes)[:6].max() < 1.0
    np.testing.assert_allclose(np.sort(all_modes)[6:], vib.frequencies, rtol=1e-8)


def test_ir_intensities_agree_with_ase_infrared(water_gfn2, tmp_path, monkeypatch):
    from ase.vibrations import Infrared

    eq, calc, vib = water_gfn2
    monkeypatch.chdir(tmp_path)
    atoms = eq.copy()
    atoms.calc = calc
    ir = Infrared(atoms, delta=0.005)
    ir.run()
    ir.read()
    reference = ir.intensities[-3:] * 42.255  # ASE's km/mol conversion (Porezag)
    np.testing.assert_allclose(vib.ir_intensities, reference, rtol=0.02)


def test_analytic_and_numerical_hessian_give_same_frequencies():
    calc = methods("HF/6-31G*")
    eq = optimize_geometry(molecule("H2O"), calc)
    analytic = freq(eq, calc, ir=False)
    hessian_less = freq(eq, _without_hessian(calc), ir=False)
    np.testing.assert_allclose(analytic.frequencies, hessian_less.frequencies, atol=2.0)


def _without_hessian(calc):
    """The same method seen through a calculator without get_hessian (finite differences)."""
    from ase.calculators.calculator import Calculator

    class Forwarding(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            super().calculate(atoms, properties, system_changes)
            copy = self.atoms.copy()
            copy.calc = calc
            self.results = {"energy": copy.get_potential_energy(), "forces": copy.get_forces()}

    return Forwarding()


def test_water_thermochemistry(water_gfn2):
    _eq, _calc, vib = water_gfn2
    thermo = vib.thermochemistry(temperature=298.15, symmetrynumber=2)
    hbar_omega = vib.frequencies * units.invcm
    assert thermo["zpe"] == pytest.approx(hbar_omega.sum() / 2, rel=1e-10)
    # standard molar entropy of water vapour: 188.8 J/(mol K) (NIST); RRHO with any
    # reasonable geometry and frequencies lands within ~1 J/(mol K)
    entropy = thermo["entropy"] / units.J * units.mol
    assert entropy == pytest.approx(188.8, abs=1.5)
    assert thermo["gibbs"] == pytest.approx(thermo["enthalpy"] - 298.15 * thermo["entropy"])


def test_linear_molecule_has_3n_minus_5_modes():
    calc = methods("GFN2-xTB")
    eq = optimize_geometry(molecule("CO2"), calc, fmax=1e-4)
    vib = freq(eq, calc)
    assert vib.linear and vib.frequencies.shape == (4,)
    assert np.all(vib.frequencies > 0)
    # the two bends are degenerate
    assert vib.frequencies[0] == pytest.approx(vib.frequencies[1], abs=1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimize_geometry(molecule("H2"), methods("GFN2-xTB"), optimizer="Newton")
    with pytest.raises(ValueError, match="needs a calculator"):
        optimize_geometry(molecule("H2"))
    with pytest.raises(ValueError, match="needs a calculator"):
        freq(molecule("H2"))
    with pytest.raises(TypeError, match="calc must be a method name"):
        freq(molecule("H2"), 42)


def test_method_names_are_calculators_too():
    """``freq(atoms, "GFN2-xTB")`` and ``optimize_geometry(atoms, "GFN2-xTB")`` resolve the
    name as ``methods`` does: the same numbers as with the calculator."""
    calc = methods("GFN2-xTB")
    by_name = optimize_geometry(molecule("H2"), "GFN2-xTB")
    by_calc = optimize_geometry(molecule("H2"), calc)
    assert by_name.get_distance(0, 1) == pytest.approx(by_calc.get_distance(0, 1), abs=1e-6)
    assert freq(by_calc, "GFN2-xTB").frequencies[-1] == pytest.approx(
        freq(by_calc, calc).frequencies[-1], abs=1e-3
    )


def test_a_floppy_minimum_is_optimised_until_its_modes_are_real(tmp_path):
    """``equilibrium_and_modes`` (the learner's and ML-NEA's starting geometry): the
    ethene–butadiene complex optimised to 1e-3 eV/Å still has an imaginary mode (52i cm⁻¹);
    it is optimised on to 1e-4 eV/Å, where all its modes are real and its energy is lower. A
    structure that stays at a saddle point (planar NH3, held there by its symmetry) is
    refused in one line."""
    from pathlib import Path

    from ase import Atoms
    from ase.io import read

    from ase_al.simulations import equilibrium_and_modes

    calc = methods("GFN2-xTB")
    loose = read(Path(__file__).parent / "data" / "ethene_butadiene_complex.traj", 0)
    assert freq(loose, calc, ir=False).frequencies.min() < -20.0
    loose.calc = calc
    e_loose = loose.get_potential_energy()
    eq, vib = equilibrium_and_modes(loose, calc, tmp_path / "complex")
    assert vib.frequencies.min() > 10.0
    eq.calc = calc
    assert eq.get_potential_energy() < e_loose
    planar = Atoms("NH3", [(0, 0, 0), (1.0, 0, 0), (-0.5, 0.866, 0), (-0.5, -0.866, 0)])
    with pytest.raises(ValueError, match=r"no minimum: imaginary modes at \[-\d"):
        equilibrium_and_modes(planar, calc, tmp_path / "nh3")
