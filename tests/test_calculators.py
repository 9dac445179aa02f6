import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from conftest import directional_forces, numerical_forces

from ase_al import ReferenceCalculationError, methods
from ase_al.calculators import available, register

# Central differences with a 1e-3 Å step carry an O(δ²) error of ~1e-6 eV/Å for these
# curvatures; SCF convergence (1e-10 Eh) and DFT grid noise stay below 1e-4 eV/Å. 2e-3 eV/Å
# therefore flags any real error in the analytic gradient while tolerating the noise.
FORCE_TOL = 2e-3


def distorted_water():
    atoms = molecule("H2O")
    atoms.positions += np.random.default_rng(1).normal(0, 0.05, atoms.positions.shape)
    return atoms


@pytest.mark.parametrize(
    "name",
    # small basis sets: the gradient code is what is checked. Cheap methods are checked
    # component by component (18 calculations); for DFT and MP2, where one calculation takes
    # 0.3-0.6 s, along three random directions of the 9-dimensional space (6 calculations):
    # a wrong component shows in every projection that is not orthogonal to it.
    [
        "HF/6-31G*",
        pytest.param("B3LYP/6-31G*", marks=pytest.mark.slow),
        "MP2/cc-pVDZ",
        "B3LYP-D4/STO-3G",
        "GFN2-xTB",
        "GFN1-xTB",
    ],
)
def test_analytic_forces_match_finite_differences(name):
    atoms = distorted_water()
    calc = methods(name)
    atoms.calc = calc
    analytic = atoms.get_forces()
    assert np.abs(analytic).max() > 0.1  # a distorted geometry has real forces to check
    if name.startswith(("MP2", "B3LYP")):
        directions, numerical = directional_forces(atoms, calc)
        projected = np.einsum("ij,dij->d", analytic, directions)
        assert np.abs(projected).max() > 0.1
        np.testing.assert_allclose(projected, numerical, atol=FORCE_TOL)
    else:
        np.testing.assert_allclose(analytic, numerical_forces(atoms, calc), atol=FORCE_TOL)


def test_xtb_forces_on_ethanol(ethanol_frames):
    atoms = ethanol_frames[5].copy()
    calc = methods("GFN2-xTB")
    atoms.calc = calc
    np.testing.assert_allclose(atoms.get_forces(), numerical_forces(atoms, calc), atol=FORCE_TOL)
    # the shared data set was made with the same program and method
    assert atoms.get_potential_energy() == pytest.approx(
        ethanol_frames[5].get_potential_energy(), abs=1e-5
    )


def test_b3lyp_energy_identical_to_direct_pyscf():
    from ase.units import Hartree
    from pyscf import dft, gto

    atoms = molecule("H2")
    atoms.calc = methods("b3lyp/6-31g*")
    mol = gto.M(
        atom=[("H", tuple(p)) for p in atoms.positions], basis="6-31G*", unit="Angstrom", verbose=0
    )
    mf = dft.RKS(mol)
    mf.xc = "B3LYP"
    mf.conv_tol = 1e-10
    assert atoms.get_potential_energy() == pytest.approx(mf.kernel() * Hartree, abs=1e-7)


def test_gfn2_energy_identical_to_direct_tblite():
    from ase.units import Bohr, Hartree
    from tblite.interface import Calculator

    atoms = distorted_water()
    atoms.calc = methods("GFN2-xTB")
    direct = Calculator("GFN2-xTB", atoms.numbers, atoms.positions / Bohr)
    direct.set("verbosity", 0)
    assert atoms.get_potential_energy() == pytest.approx(
        direct.singlepoint()["energy"] * Hartree, abs=1e-8
    )


def test_xtb_result_does_not_depend_on_what_was_computed_before(ethanol_frames):
    # labels computed in parallel must not depend on which worker computed which structure
    frames = ethanol_frames[:6]

    def forces(calc, order):
        out = {}
        for i in order:
            atoms = frames[i].copy()
            atoms.calc = calc
            out[i] = atoms.get_forces()
        return np.array([out[i] for i in range(len(frames))])

    forward = forces(methods("GFN2-xTB"), range(6))
    backward = forces(methods("GFN2-xTB"), reversed(range(6)))
    np.testing.assert_allclose(forward, backward, rtol=0, atol=1e-10)
    # tblite's restart from the previous structure's solution moves forces at SCF tolerance
    restarted = forces(methods("GFN2-xTB", scf_restart=True), range(6))
    assert 1e-8 < np.abs(restarted - forward).max() < 1e-3


def test_dipole_of_water_points_along_symmetry_axis():
    atoms = molecule("H2O")  # C2v, symmetry axis z
    atoms.calc = methods("HF/6-31G*")
    dipole = atoms.get_dipole_moment()
    np.testing.assert_allclose(dipole[:2], 0, atol=1e-6)
    # HF/6-31G* water dipole is 2.2-2.3 Debye (overestimates the experimental 1.85 D)
    assert 2.1 < abs(dipole[2]) / 0.20819434 < 2.4


def test_open_shell_from_atoms_info_is_unrestricted():
    oh = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]])
    oh.info["multiplicity"] = 2
    calc = methods("HF/6-31G*")
    oh.calc = calc
    energy = oh.get_potential_energy()
    assert type(calc._mf).__name__.startswith("UHF")
    explicit = methods("HF/6-31G*", multiplicity=2)
    oh2 = Atoms("OH", positions=oh.positions, calculator=explicit)
    assert oh2.get_potential_energy() == pytest.approx(energy, abs=1e-8)


def test_analytic_hessian_matches_finite_differences():
    from ase_al.simulations import finite_difference_hessian

    atoms = distorted_water()
    calc = methods("HF/6-31G*")
    analytic = calc.get_hessian(atoms)
    numeric, _ = finite_difference_hessian(atoms, calc, delta=2e-3)
    np.testing.assert_allclose(analytic, numeric, atol=5e-3 * np.abs(analytic).max())


def test_names_are_case_insensitive_and_listed():
    assert type(methods("gfn2-XTB")).__name__ == "XTB"
    assert {"GFN2-xTB", "GFN1-xTB", "HF/<basis>"} <= set(available())


def test_register_adds_a_method():
    from ase.calculators.emt import EMT

    register("my-EMT", lambda **kw: EMT(**kw))
    assert isinstance(methods("MY-emt"), EMT)


def test_entry_point_plugin(tmp_path, monkeypatch):
    # a real installed-package layout: a module and a .dist-info with entry_points.txt
    (tmp_path / "myplugin.py").write_text(
        "from ase.calculators.lj import LennardJones\n"
        "def make(**kwargs):\n    return LennardJones(**kwargs)\n"
    )
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ase_al.calculators]\nLJ-plugin = myplugin:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "LJ-plugin" in available()
    calc = methods("lj-plugin", sigma=2.0)
    assert type(calc).__name__ == "LennardJones" and calc.parameters.sigma == 2.0


@pytest.mark.parametrize("name", ["B3LIP/6-31G*", "nonsense", "", "GFN3-xTB"])
def test_unknown_method_lists_known_ones(name):
    with pytest.raises(ValueError, match="GFN2-xTB"):
        methods(name)


def test_odd_electrons_with_singlet_is_rejected():
    oh = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]])
    oh.calc = methods("HF/6-31G*", multiplicity=1)
    with pytest.raises(ValueError, match="multiplicity 1 is impossible for 9 electrons"):
        oh.get_potential_energy()


def test_xtb_rejects_impossible_spin():
    oh = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]])
    oh.calc = methods("GFN2-xTB", multiplicity=1)
    with pytest.raises(ValueError, match="multiplicity 1 is impossible for 9 electrons"):
        oh.get_potential_energy()


@pytest.mark.parametrize("name", ["HF/6-31G*", "GFN2-xTB"])
def test_nan_positions_are_rejected(name):
    atoms = molecule("H2O")
    atoms.positions[1, 0] = np.nan
    atoms.calc = methods(name)
    with pytest.raises(ValueError, match=r"NaN or infinite values \(atoms \[1\]\)"):
        atoms.get_potential_energy()


def test_element_missing_from_basis():
    atoms = Atoms("AuH", positions=[[0, 0, 0], [0, 0, 1.5]])
    atoms.calc = methods("HF/6-31G*")
    with pytest.raises(ValueError, match="basis set '6-31G\\*' is not available for Au"):
        atoms.get_potential_energy()


def test_unconverged_scf_raises_with_geometry():
    atoms = distorted_water()
    atoms.calc = methods("B3LYP/6-31G*", max_cycle=2)
    with pytest.raises(ReferenceCalculationError, match="did not converge") as info:
        atoms.get_potential_energy()
    np.testing.assert_array_equal(info.value.atoms.positions, atoms.positions)


def test_mp2_has_no_dipole():
    from ase.calculators.calculator import PropertyNotImplementedError

    atoms = molecule("H2")
    atoms.calc = methods("MP2/cc-pVDZ")
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_dipole_moment()


def test_public_api_resolves_and_import_is_light():
    """Every exported name resolves; ``import ase_al`` alone loads no plotting or numerics
    (a CLI error or a worker start-up does not pay for matplotlib)."""
    import subprocess
    import sys

    code = (
        "import sys, ase_al\n"
        "heavy = sorted(m for m in ('matplotlib', 'scipy', 'torch', 'pyscf') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in ase_al.__all__ if getattr(ase_al, n, None) is None]\n"
        "assert not missing, missing\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["GFN2-xTB", "B3LYP-D4/STO-3G"])
def test_used_calculator_pickles_for_worker_processes(name):
    import pickle

    atoms = distorted_water()
    calc = methods(name)
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()  # holds library handles
    copy = atoms.copy()
    copy.calc = pickle.loads(pickle.dumps(calc))
    assert copy.get_potential_energy() == pytest.approx(energy, abs=1e-9)
    np.testing.assert_allclose(copy.get_forces(), forces, rtol=0, atol=1e-8)


def _labelled_h2(r):
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = molecule("H2")
    atoms.set_distance(0, 1, r)
    atoms.calc = SinglePointCalculator(atoms, energy=(r - 0.74) ** 2, forces=np.zeros((2, 3)))
    return atoms


@pytest.mark.parametrize("name", ["H2O", "CH3OH", "Cu"])
def test_fast_state_check_agrees_with_ase(name):
    """ase-al calculators check for system changes with their own compare_atoms (np.allclose
    made an MD step of a cheap model several times slower); it must say what ASE's says."""
    from ase.build import bulk
    from ase.calculators.calculator import compare_atoms as ase_compare

    from ase_al.options import compare_atoms

    base = bulk("Cu", cubic=True) if name == "Cu" else molecule(name)
    edits = [
        lambda a, b: None,
        lambda a, b: b.positions.__setitem__((0, 0), b.positions[0, 0] + 1e-14),
        lambda a, b: b.positions.__setitem__((0, 0), b.positions[0, 0] + 1e-16),
        lambda a, b: b.set_initial_charges(np.zeros(len(b))),
        lambda a, b: (
            a.set_initial_charges(np.zeros(len(a))),
            b.set_initial_charges(np.ones(len(b))),
        ),
        lambda a, b: setattr(b, "pbc", [True, False, True]),
        lambda a, b: setattr(b, "cell", b.cell * 1.01),
        lambda a, b: b.numbers.__setitem__(0, 1),
        lambda a, b: b.set_initial_magnetic_moments(np.ones(len(b))),
        lambda a, b: (
            a.positions.__setitem__((0, 0), np.inf),
            b.positions.__setitem__((0, 0), np.inf),
        ),
        lambda a, b: b.positions.__setitem__((0, 0), np.nan),
        lambda a, b: b.set_momenta(np.ones((len(b), 3))),
    ]
    for edit in edits:
        a, b = base.copy(), base.copy()
        edit(a, b)
        assert compare_atoms(a, b) == ase_compare(a, b)
        excluded = {"initial_charges", "cell"}
        assert compare_atoms(a, b, 1e-15, excluded) == ase_compare(a, b, 1e-15, excluded)
    assert compare_atoms(None, base) == ase_compare(None, base)
    # and a calculator with it caches as ASE's do: a second energy is not recomputed
    from ase_al.calculators import KREG

    calc = KREG(equilibrium=molecule("H2"))
    calc.train([_labelled_h2(r) for r in (0.7, 0.74, 0.8)], forces=False)
    atoms = molecule("H2")
    atoms.calc = calc
    atoms.get_potential_energy()
    assert calc.check_state(atoms) == []
    atoms.positions[0, 2] += 0.01
    assert calc.check_state(atoms) == ["positions"]
