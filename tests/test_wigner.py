import numpy as np
import pytest
from ase import units
from ase.build import molecule

from ase_al import freq, methods, optimize_geometry
from ase_al.samplers import wigner
from ase_al.simulations import HBAR, HarmonicAnalysis


@pytest.fixture(scope="module")
def h2():
    calc = methods("GFN2-xTB")
    eq = optimize_geometry(molecule("H2"), calc, fmax=1e-5)
    return eq, freq(eq, calc)


def test_h2_ground_state_width_and_momentum(h2):
    eq, vib = h2
    samples = wigner(eq, vib, n=6000, seed=3)
    bonds = np.array([s.get_distance(0, 1) for s in samples])
    omega = vib.angular_frequencies[0]
    mu = eq.get_masses().prod() / eq.get_masses().sum()
    analytic = np.sqrt(HBAR / (2 * mu * omega))  # Å
    assert bonds.std() == pytest.approx(analytic, rel=0.05)
    assert bonds.mean() == pytest.approx(eq.get_distance(0, 1), abs=3 * analytic / np.sqrt(6000))
    for s in samples[:100]:
        np.testing.assert_allclose(s.get_momenta().sum(axis=0), 0, atol=1e-12)
        centred = s.positions - s.get_center_of_mass()
        np.testing.assert_allclose(np.cross(centred, s.get_momenta()).sum(axis=0), 0, atol=1e-12)
    # the ground state's mean kinetic energy is ħω/4
    kinetic = np.mean([s.get_kinetic_energy() for s in samples])
    assert kinetic == pytest.approx(HBAR * omega / 4, rel=0.05)


def test_temperature_widens_by_coth(h2):
    eq, vib = h2
    omega = vib.angular_frequencies[0]
    temperature = 8000.0
    hot = wigner(eq, vib, n=6000, temperature=temperature, seed=4)
    cold = wigner(eq, vib, n=6000, temperature=0, seed=4)
    ratio = np.std([s.get_distance(0, 1) for s in hot]) / np.std(
        [s.get_distance(0, 1) for s in cold]
    )
    expected = np.sqrt(1 / np.tanh(HBAR * omega / (2 * units.kB * temperature)))
    # same seed: displacements scale exactly by the coth factor
    assert ratio == pytest.approx(expected, rel=1e-6)
    assert hot[0].info["sampling_temperature_K"] == temperature


def test_polyatomic_samples_keep_rigid_motion_zero():
    calc = methods("GFN2-xTB")
    eq = optimize_geometry(molecule("H2O"), calc, fmax=1e-4)
    vib = freq(eq, calc)
    samples = wigner(eq, vib, n=50, temperature=300, seed=0)
    for s in samples:
        np.testing.assert_allclose(s.get_momenta().sum(axis=0), 0, atol=1e-12)
        centred = s.positions - s.get_center_of_mass()
        np.testing.assert_allclose(np.cross(centred, s.get_momenta()).sum(axis=0), 0, atol=1e-10)
    # reproducible with a seed
    again = wigner(eq, vib, n=50, temperature=300, seed=0)
    np.testing.assert_array_equal(samples[7].positions, again[7].positions)
    # ... also when the geometry and Hessian differ by round-off (a re-optimised geometry, a
    # Hessian summed by other threads): a normal mode's sign is fixed by convention, not left to
    # LAPACK, else a flipped mode gives another ensemble for the same seed (17 of these 20
    # perturbed analyses did before the convention)
    rng = np.random.default_rng(1)
    hessian = vib.get_hessian_2d()
    for _ in range(20):
        moved = eq.copy()
        moved.positions += rng.normal(scale=1e-9, size=3)
        noise = rng.normal(scale=1e-9, size=hessian.shape)
        perturbed = HarmonicAnalysis(moved, hessian + noise + noise.T)
        for mode in perturbed.mass_weighted_modes:
            assert mode[np.abs(mode) > 0.1 * np.abs(mode).max()][0] > 0
        resampled = wigner(moved, perturbed, n=50, temperature=300, seed=0)
        np.testing.assert_allclose(resampled[7].positions, samples[7].positions, atol=1e-6)


def test_wigner_bad_input(h2):
    eq, vib = h2
    with pytest.raises(ValueError, match="different molecules"):
        wigner(molecule("H2O"), vib, n=5)
    with pytest.raises(ValueError, match="temperature"):
        wigner(eq, vib, n=5, temperature=-1)
    with pytest.raises(TypeError, match="vibrations must be"):
        wigner(eq, [1, 2, 3], n=5)


def test_frozen_modes_keep_their_position_and_get_thermal_momenta():
    """``freeze_below_cm1``: the soft modes' coordinates stay at zero exactly, the other modes
    get the same draws as without freezing, and the frozen modes' momenta keep their Wigner
    variance ħω/2·coth(ħω/2kT)."""
    calc = methods("GFN2-xTB")
    eq = optimize_geometry(molecule("H2O"), calc, fmax=1e-4)
    vib = freq(eq, calc)
    bend = int(np.argmin(vib.frequencies))  # ~1500 cm⁻¹; the stretches are above 3000
    temperature, n = 3000.0, 1000
    free = wigner(eq, vib, n, temperature, seed=2)
    frozen = wigner(eq, vib, n, temperature, seed=2, freeze_below_cm1=2500.0)
    sqrt_m = np.repeat(np.sqrt(eq.get_masses()), 3)

    def coordinates(samples):
        return np.array([((s.positions - eq.positions).ravel() * sqrt_m) for s in samples]) @ (
            vib.mass_weighted_modes.T
        )

    q_free, q_frozen = coordinates(free), coordinates(frozen)
    np.testing.assert_allclose(q_frozen[:, bend], 0.0, atol=1e-12)
    stretches = [k for k in range(3) if k != bend]
    np.testing.assert_allclose(q_frozen[:, stretches], q_free[:, stretches], atol=1e-12)
    p_bend = (
        np.array([s.get_momenta().ravel() / sqrt_m for s in frozen])
        @ (vib.mass_weighted_modes[bend])
    )
    omega = vib.angular_frequencies[bend]
    expected = HBAR * omega / 2 / np.tanh(HBAR * omega / (2 * units.kB * temperature))
    assert np.mean(p_bend**2) == pytest.approx(expected, rel=0.15)  # 3.4 σ of 1000 draws
    with pytest.raises(ValueError, match="freeze_below_cm1"):
        wigner(eq, vib, 5, freeze_below_cm1=-1.0)


def test_freezing_the_soft_modes_of_a_complex_keeps_its_molecules_whole():
    """The ethene–butadiene complex (GFN2-xTB minimum, six intermolecular modes below
    100 cm⁻¹): sampled harmonically at 300 K, most structures lie in fragments hundreds of
    kcal/mol above the minimum; with those modes frozen, every structure keeps its two
    molecules and stays within the energy of its intramolecular zero-point motion."""
    import warnings
    from pathlib import Path

    from ase.io import read

    from ase_al.reactions import species

    calc = methods("GFN2-xTB")
    complex_ = read(Path(__file__).parent / "data" / "ethene_butadiene_complex.traj", 1)
    vib = freq(complex_, calc, ir=False)
    assert np.sum(vib.frequencies < 100.0) == 6 and vib.frequencies.min() > 10.0
    complex_.calc = calc
    e0 = complex_.get_potential_energy()
    kcal_mol = units.kcal / units.mol
    with pytest.warns(UserWarning, match=r"modes at \[15.0, 26.7.*break bonds"):
        wigner(complex_, vib, 1, 300.0, seed=1)
    for cutoff, whole, ceiling in ((0.0, False, None), (100.0, True, 120.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error" if whole else "ignore")  # no warning once frozen
            samples = wigner(complex_, vib, 12, 300.0, seed=1, freeze_below_cm1=cutoff)
        intact = [species(s) == ["C2H4", "C4H6"] for s in samples]
        assert all(intact) if whole else sum(intact) < len(samples) / 2
        if ceiling is not None:
            for s in samples:
                s.calc = calc
                assert (s.get_potential_energy() - e0) / kcal_mol < ceiling
    # the learner's starting points pass Sampling.freeze_below_cm1 on
    from ase_al.active_learning.starting_points import StartingPoint, StartingPoints

    points = StartingPoints([StartingPoint(complex_, vib)])
    batch = points.sample(12, 300.0, np.random.default_rng(0), freeze_below_cm1=100.0)
    assert all(species(s) == ["C2H4", "C4H6"] for s in batch)


def test_separate_molecules_get_free_relative_motion(tmp_path):
    """A structure of separate molecules (``info["separated"]``): each molecule is optimised
    alone where it stands, and the relative translations and rotations (6 for two
    non-linear molecules; frequencies near zero) keep their positions with classical thermal
    momenta, mass-weighted variance kT; the vibrations are sampled as always."""
    from ase import Atoms
    from ase.collections import s22

    from ase_al.active_learning.starting_points import (
        StartingPoint,
        StartingPoints,
        build_starting_points,
        free_motions,
        molecules_optimised_alone,
    )
    from ase_al.reactions import fragments
    from ase_al.simulations import equilibrium_and_modes

    water = molecule("H2O")

    def moved(atoms, by):
        copy = atoms.copy()
        copy.translate(by)
        return copy

    assert free_motions(water + moved(water, (8, 0, 0))) == 6
    assert free_motions(molecule("H2") + moved(water, (8, 0, 0))) == 5
    assert free_motions(Atoms("Ar2", [(0, 0, 0), (8, 0, 0)])) == 1
    with pytest.raises(ValueError, match="is one molecule"):
        free_motions(water)

    calc = methods("GFN2-xTB")
    alone = optimize_geometry(water, calc, fmax=1e-4)
    dimer = s22["Water_dimer"]  # O H H O H H
    pair = dimer.copy()
    axis = dimer.positions[3] - dimer.positions[0]
    pair.positions[3:] += 6.0 * axis / np.linalg.norm(axis)  # O-O 8.9 Å
    pair.positions[1] += (0.0, 0.1, 0.05)  # one O-H bond stretched, the angle opened
    centres = [pair[part].get_center_of_mass() for part in fragments(pair)]
    optimised = molecules_optimised_alone(pair, calc)
    for part, centre in zip(fragments(optimised), centres, strict=True):
        one = optimised[part]
        np.testing.assert_allclose(one.get_center_of_mass(), centre, atol=1e-8)
        np.testing.assert_allclose(
            sorted(one.get_all_distances().ravel()),
            sorted(alone.get_all_distances().ravel()),
            atol=3e-3,
        )
    eq, vib = equilibrium_and_modes(optimised, calc, tmp_path / "pair", optimize=False)
    # six relative motions (dipoles 8 Å apart still feel each other), then the vibrations
    assert np.sort(np.abs(vib.frequencies))[5] < 100 < np.sort(np.abs(vib.frequencies))[6]
    free = np.argsort(np.abs(vib.angular_frequencies))[:6]
    kT = units.kB * 300.0
    samples = wigner(eq, vib, 3000, 300.0, seed=2, free_modes=6)
    sqrt_m = np.sqrt(np.repeat(eq.get_masses(), 3))
    shift = np.array([(s.positions - eq.positions).ravel() * sqrt_m for s in samples])
    momenta = np.array([s.get_momenta().ravel() / sqrt_m for s in samples])
    q_free = shift @ vib.mass_weighted_modes[free].T
    p_free = momenta @ vib.mass_weighted_modes[free].T
    assert np.abs(q_free).max() < 1e-8  # the molecules stay where they were placed
    np.testing.assert_allclose(p_free.var(axis=0), kT, rtol=0.1)  # classical, per mode
    cold = wigner(eq, vib, 50, 0.0, seed=2, free_modes=6)
    p_cold = (
        np.array([s.get_momenta().ravel() / sqrt_m for s in cold]) @ vib.mass_weighted_modes[free].T
    )
    # none at 0 K (but for what removing the vibrations' angular momentum leaves)
    assert (p_cold**2).mean() < 0.01 * kT
    with pytest.raises(ValueError, match="free_modes = 99"):
        wigner(eq, vib, 1, 300.0, free_modes=99)

    # through the learner's starting points: a water dimer (minimum) and the pair apart
    dimer = optimize_geometry(dimer, calc)
    pair.info["separated"] = True
    points = build_starting_points([dimer, pair], calc, tmp_path / "points")
    assert [p.free_modes for p in points] == [0, 6]
    assert points.reference is points.points[0].atoms
    apart = points.points[1].atoms
    np.testing.assert_allclose(apart.positions, optimised.positions, atol=1e-6)
    batch = points.sample(40, 300.0, np.random.default_rng(0))
    assert [s.info["starting_point"] for s in batch] == [0] * 20 + [1] * 20
    with pytest.raises(ValueError, match="both info.'transition_state'. and info.'separated'."):
        marked = pair.copy()
        marked.info["transition_state"] = True
        build_starting_points([dimer, marked], calc, tmp_path / "both")
    with pytest.raises(ValueError, match="separate molecules: give at least one minimum"):
        build_starting_points([pair], calc, tmp_path / "alone")
    with pytest.raises(ValueError, match="separate molecules: give at least one minimum"):
        StartingPoints([StartingPoint(eq, vib, free_modes=6)])
