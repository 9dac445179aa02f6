"""Transition states (Sella + frequencies), the descent to both minima, and the classification
of trajectory ends by connectivity."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.db import connect
from ase.io import read

from ase_al.reactions import (
    Outcomes,
    TransitionStateError,
    barrier,
    bonds_formed_and_broken,
    classify,
    descend_from_saddle,
    find_transition_state,
    propagate_both_ways,
    species,
)
from ase_al.samplers.relax import relax_until_uncertain

pytest.importorskip("sella")


def hcn():
    return Atoms("HCN", [(0.0, 0.0, -1.07), (0.0, 0.0, 0.0), (0.0, 0.0, 1.16)])


@pytest.fixture(scope="module")
def hcn_saddle():
    import ase_al

    calc = ase_al.methods("GFN2-xTB")
    guess = Atoms("HCN", [(0.9, 0.0, 0.0), (0.0, 0.0, -0.58), (0.0, 0.0, 0.58)])
    return (calc, *find_transition_state(guess, calc))


def test_hcn_hnc_saddle_point_has_one_imaginary_mode_and_connects_both_isomers(hcn_saddle):
    import ase_al

    calc, saddle, vib = hcn_saddle
    assert np.abs(saddle.get_forces()).max() < 1e-3
    imaginary = vib.frequencies[vib.frequencies < 0]
    assert len(imaginary) == 1 and -2000 < imaginary[0] < -800  # cm-1, H swinging C -> N
    assert saddle.info["imaginary_frequency"] == pytest.approx(imaginary[0])
    # the H bridges C and N: a bent structure, closer to C than to N
    h_c, h_n = saddle.get_distance(0, 1), saddle.get_distance(0, 2)
    assert 1.0 < h_c < 1.3 < h_n < 1.6
    # descending both ways gives HCN and HNC: H bonded to C in one, to N in the other
    ends = descend_from_saddle(saddle, vib, calc)
    partners = sorted(
        "C" if end.get_distance(0, 1) < end.get_distance(0, 2) else "N" for end in ends
    )
    assert partners == ["C", "N"]
    energies = sorted(end.get_potential_energy() for end in ends)
    assert energies[1] < saddle.get_potential_energy()
    assert all(np.abs(end.get_forces()).max() < 1e-3 for end in ends)
    # the minima are not marked as saddle points (the learner would refine them as such)
    assert not any("transition_state" in end.info for end in ends)
    # a minimum is not a saddle point: the search (or the check after it) says so
    relaxed = ase_al.optimize_geometry(hcn(), calc, fmax=1e-3)
    with pytest.raises(TransitionStateError, match="0 imaginary modes.*a minimum") as err:
        find_transition_state(relaxed.copy(), calc, steps=30)
    # the error carries the stationary point it found, to look at
    assert err.value.vibrations.frequencies.min() > -50.0
    assert np.abs(err.value.atoms.get_forces()).max() < 1e-3
    # a potential's own barrier from guesses: the saddle point's energy less the minimum's
    own = barrier(calc, saddle, hcn())
    assert own.problem is None and len(own.imaginary_cm1) == 1 and own.species == ["CHN"]
    probe = own.minimum.copy()
    probe.calc = calc
    assert own.energy == pytest.approx(
        saddle.get_potential_energy() - probe.get_potential_energy(), abs=1e-4
    )
    assert own.energy == pytest.approx(saddle.get_potential_energy() - energies[0], abs=2e-3)
    # from a minimum as the saddle-point guess: the barrier there (0), the problem named
    flat = barrier(calc, relaxed, hcn())
    assert "a minimum" in flat.problem and flat.imaginary_cm1 == []
    assert abs(flat.energy) < 1e-3


def test_species_and_bond_changes_from_covalent_radii():
    water_dimer = Atoms(
        "OHHOHH",
        [(0, 0, 0), (0.96, 0, 0), (-0.24, 0.93, 0), (2.9, 0, 0), (3.2, 0.9, 0), (3.2, -0.5, 0.8)],
    )
    assert species(water_dimer) == ["H2O", "H2O"]  # a 1.94 Å hydrogen bond is no bond
    start = hcn()
    end = Atoms("HCN", [(0.0, 0.0, 2.16), (0.0, 0.0, 0.0), (0.0, 0.0, 1.16)])
    formed, broken = bonds_formed_and_broken(start, end)
    assert formed == [(0, 2)] and broken == [(0, 1)]  # both: H moves from C to N
    apart = Atoms("HCN", [(0.0, 0.0, -4.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.16)])
    assert bonds_formed_and_broken(start, apart) == ([], [(0, 1)])  # breaking only
    assert bonds_formed_and_broken(apart, start) == ([(0, 1)], [])  # forming only
    assert species(apart) == ["CN", "H"]


def test_classification_fractions_errors_and_bond_times(tmp_path):
    reactant = hcn()
    product = Atoms("HCN", [(0.0, 0.0, 2.16), (0.0, 0.0, 0.0), (0.0, 0.0, 1.16)])

    def path(z_values):
        return [Atoms("HCN", [(0.0, 0.3, z), (0.0, 0.0, 0.0), (0.0, 0.0, 1.16)]) for z in z_values]

    reacting = path(np.linspace(-1.07, 2.16, 11))  # H moves from C to N
    staying = path([-1.07] * 11)
    leaving = path(np.linspace(-1.07, -5.0, 11))  # H dissociates: another outcome
    outcomes = classify([reacting] * 6 + [staying] * 3 + [leaving], reactant, product, 0.5)
    assert outcomes.labels.count("product") == 6
    assert outcomes.fractions == {"reactant": 0.3, "product": 0.6, "other": 0.1}
    assert outcomes.errors["product"] == pytest.approx(np.sqrt(0.6 * 0.4 / 10))
    # the N-H bond forms when H comes within 1.3 (0.31 + 0.71) = 1.33 Å of N
    z = np.linspace(-1.07, 2.16, 11)
    first = int(np.argmax(np.hypot(0.3, z - 1.16) < 1.3 * (0.31 + 0.71)))
    assert outcomes.bond_times[0][(0, 2)] == pytest.approx(first * 0.5)
    assert outcomes.bond_times[6][(0, 2)] is None
    assert outcomes.asynchronicity() == []  # one bond formed: nothing to compare
    assert outcomes.gaps() == [None] * 10
    paths = outcomes.write([reacting] * 6 + [staying] * 3 + [leaving], tmp_path)
    from ase.io import read

    assert len(read(paths["product"], ":")) == 6 and len(read(paths["other"], ":")) == 1
    with pytest.raises(ValueError, match="no trajectories"):
        classify([], reactant, product)
    # halves in pairs: one trajectory joins reactant and product, the other does not
    summary = classify([reacting, staying, reacting, leaving], reactant, product, 0.5).summary()
    assert summary["direct"] == 1 and summary["direct_fraction"] == 0.5
    assert summary["direct_fraction_error"] == pytest.approx(np.sqrt(0.25 / 2))
    assert summary["end_fractions"] == {"reactant": 0.25, "product": 0.5, "other": 0.25}
    assert summary["bond_formation_gaps_fs"] == [] and summary["gap_mean_fs"] is None
    # a hot product: its N-H bond stretched past the 1.33 Å cutoff in the last frame only
    # (and in one frame before): "other" by its last frame, the product over its last 2 fs
    hot = path([2.16] * 8 + [2.6, 2.16, 2.6])
    assert classify([hot], reactant, product, 0.5).labels == ["other"]
    assert classify([hot], reactant, product, 0.5, end_fs=0.0).labels == ["other"]
    assert classify([hot], reactant, product, 0.5, end_fs=2.0).labels == ["product"]
    # ... whereas a bond gone for most of the window is gone, and one formed in the last
    # frame only is not yet counted
    assert classify([leaving], reactant, product, 0.5, end_fs=2.0).labels == ["other"]
    late = path([-1.07] * 10 + [2.16])
    assert classify([late], reactant, product, 0.5, end_fs=2.0).labels == ["reactant"]
    with pytest.raises(ValueError, match="end_fs=2.0: a window at the end needs time_step_fs"):
        classify([hot], reactant, product, end_fs=2.0)
    # a bond's time is its first approach: the N-H bond forms in frame 1 (0.5 fs), overshoots,
    # rebounds past the 1.33 Å cutoff in frames 3-5 and comes back: formed at 0.5 fs, not at
    # 3 fs (its last formation); within 1.1 x the radii (1.12 Å), in frame 2 (1 fs)
    rebound = path([-1.07, 0.0, 2.16, 2.6, 2.7, 2.6, 2.16, 2.16, 2.16, 2.16, 2.16])
    assert np.hypot(0.3, 2.6 - 1.16) > 1.33 > np.hypot(0.3, 0.0 - 1.16) > 1.1 * 1.02
    outcomes = classify([rebound], reactant, product, 0.5, end_fs=2.0)
    assert outcomes.labels == ["product"] and outcomes.bond_times[0][(0, 2)] == 0.5
    tight = classify([rebound], reactant, product, 0.5, end_fs=2.0, bond_time_scale=1.1)
    assert tight.bond_times[0][(0, 2)] == 1.0
    with pytest.raises(ValueError, match="bond_time_scale must be positive"):
        classify([rebound], reactant, product, 0.5, bond_time_scale=0.0)
    with pytest.raises(TypeError, match="bond_time_scale must be a number, got str"):
        classify([rebound], reactant, product, 0.5, bond_time_scale="1.1")


def test_bond_formation_gap_of_a_two_bond_reaction():
    """Two C2 units closing a four-membered ring, one new bond after the other: each bond is
    timed at its first approach within the cutoff (1.3 x 1.52 = 1.98 Å), a rebound past it
    does not move that time, and the gap is the difference; halves in pairs compare
    trajectory by trajectory through ``gaps()``."""
    from ase_al.reactions import connectivity

    def frames(y2, y3):  # C0-C1 fixed, C2 above C1 and C3 above C0 at heights y2, y3 (Å)
        return [
            Atoms("C4", [(0, 0, 0), (1.5, 0, 0), (1.5, a, 0), (0, b, 0)])
            for a, b in zip(y2, y3, strict=True)
        ]

    reactant, product = frames([4.0], [4.0])[0], frames([1.5], [1.5])[0]
    assert connectivity(product).sum() == 8  # the ring's four bonds, no diagonal
    late = frames(
        [4.0, 3.0, 2.5, 1.9, 1.5, 1.5, 1.5, 1.5, 2.1, 2.1, 1.5],  # C1-C2 bonded from frame 3
        [4.0, 3.5, 3.0, 2.6, 2.3, 2.1, 1.9, 1.5, 1.5, 1.5, 1.5],  # C0-C3 from frame 6
    )
    together = frames([4.0, 3.0, 1.9] + [1.5] * 8, [4.0, 3.0, 1.9] + [1.5] * 8)
    outcomes = classify([late, together], reactant, product, 0.5, end_fs=2.0)
    assert outcomes.labels == ["product", "product"]
    assert outcomes.bond_times[0] == {(0, 3): 3.0, (1, 2): 1.5}  # not 5.0: the rebound
    assert outcomes.gaps() == [1.5, 0.0] and outcomes.asynchronicity() == [1.5, 0.0]
    summary = outcomes.summary()
    assert summary["gap_mean_fs"] == 0.75
    assert summary["gap_error_fs"] == pytest.approx(np.std([1.5, 0.0], ddof=1) / np.sqrt(2))
    # within 1.6 Å (bond_time_scale 1.6 / 1.52): C1-C2 at frame 4, C0-C3 at frame 7
    tight = classify([late], reactant, product, 0.5, end_fs=2.0, bond_time_scale=1.6 / 1.52)
    assert tight.bond_times[0] == {(0, 3): 3.5, (1, 2): 2.0}


def test_both_ways_halves_are_one_time_reversible_trajectory():
    """Velocity Verlet is time-reversible: from the forward half's last frame with momenta
    reversed, a trajectory of twice the length passes through the start and then retraces the
    backward half."""
    from ase.build import molecule
    from ase.calculators.emt import EMT

    start = molecule("CH4")
    start.rattle(0.05, seed=1)
    rng = np.random.default_rng(0)
    start.set_momenta(rng.normal(0.0, 0.5, (5, 3)) * np.sqrt(start.get_masses())[:, None] / 10)
    ((forward, backward),) = propagate_both_ways([start], EMT(), time_fs=6.0, time_step_fs=0.25)
    assert len(forward) == len(backward) == 12  # a frame every 2 steps, the start not kept
    e0 = start.copy()
    e0.calc = EMT()
    total = e0.get_potential_energy() + e0.get_kinetic_energy()

    def spread(frames):  # each frame keeps its energy; NVE: the total is conserved
        return max(abs(f.get_potential_energy() + f.get_kinetic_energy() - total) for f in frames)

    assert spread(forward + backward) < 3e-3
    ((fine_f, fine_b),) = propagate_both_ways([start], EMT(), time_fs=6.0, time_step_fs=0.125)
    # velocity Verlet's energy error is second order in the time step
    assert 3.0 < spread(forward + backward) / spread(fine_f + fine_b) < 5.5
    turned = forward[-1].copy()
    turned.set_momenta(-forward[-1].get_momenta())
    ((retrace, _),) = propagate_both_ways([turned], EMT(), time_fs=12.0, time_step_fs=0.25)
    assert np.allclose(retrace[len(forward) - 1].positions, start.positions, atol=1e-8)
    for j, frame in enumerate(backward):
        assert np.allclose(retrace[len(forward) + j].positions, frame.positions, atol=1e-8)
    with pytest.raises(ValueError, match="at least one"):
        propagate_both_ways([], EMT())
    with pytest.raises(ValueError, match="time_step_fs"):
        propagate_both_ways([start], EMT(), time_step_fs=0.0)


def test_direct_trajectories_join_reactant_and_product():
    labels = ["product", "reactant", "reactant", "product", "reactant", "reactant"]
    labels += ["product", "other"]
    count, fraction, error = Outcomes(labels).direct()
    assert (count, fraction) == (2, 0.5)  # a recrossing and a side product are not direct
    assert Outcomes(labels).joins() == [True, True, False, False]
    assert error == pytest.approx(np.sqrt(0.25 / 4))
    with pytest.raises(ValueError, match="in pairs"):
        Outcomes(labels[:3]).direct()


def test_ts_task_of_the_command_line(tmp_path, monkeypatch):
    from ase.io import read

    from ase_al.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.inp").write_text(
        "TS GFN2-xTB irc=True\nxyzfile='3\n\nH 0.9 0.0 0.0\nC 0.0 0.0 -0.58\nN 0.0 0.0 0.58\n'\n"
    )
    assert main(["job.inp"]) in (0, None)
    saddle = read(tmp_path / "ts.xyz")
    assert 1.0 < saddle.get_distance(0, 1) < 1.3
    table = np.loadtxt(tmp_path / "freq.dat")
    assert (table[:, 0] < 0).sum() == 1
    ends = [read(tmp_path / f"{side}.xyz") for side in ("backward", "forward")]
    assert sorted(np.argmin(e.get_distances(0, [1, 2])) for e in ends) == [0, 1]


def test_transition_state_sampling_follows_the_flux_distribution(hcn_saddle):
    """Reaction-coordinate momenta at the HCN <-> HNC saddle point: Rayleigh-distributed with
    ⟨p²⟩ = 2kT (mass-weighted), all along the requested direction, the saddle point's
    position along the mode; the real modes keep their Wigner widths."""
    from ase import units
    from scipy import stats

    import ase_al
    from ase_al.samplers import transition_state_sampling

    calc, saddle, vib = hcn_saddle
    temperature, n = 500.0, 4000
    samples = transition_state_sampling(saddle, vib, n, temperature, seed=3)
    kt = units.kB * temperature
    p = np.array([s.info["reaction_coordinate_momentum"] for s in samples])
    assert np.all(p > 0)
    assert np.mean(p**2) == pytest.approx(2 * kt, rel=0.05)
    # the whole distribution: a Kolmogorov-Smirnov test against the Rayleigh law
    assert stats.kstest(p, stats.rayleigh(scale=np.sqrt(kt)).cdf).pvalue > 0.01
    # the Cartesian momenta carry it: projected back onto the (mass-weighted) mode, up to the
    # small change made by removing the angular momentum at the displaced geometry (< 1 %)
    mode = np.argmin(vib.frequencies)
    masses = np.repeat(saddle.get_masses(), 3)
    projected = [
        (s.get_momenta().ravel() / np.sqrt(masses)) @ vib.mass_weighted_modes[mode]
        for s in samples[:50]
    ]
    np.testing.assert_allclose(projected, p[:50], rtol=1e-2)
    backward = transition_state_sampling(
        saddle, vib, 200, temperature, seed=4, direction="backward"
    )
    assert all(s.info["reaction_coordinate_momentum"] < 0 for s in backward)
    mixed = transition_state_sampling(saddle, vib, 400, temperature, seed=5, direction="random")
    forward_share = np.mean([s.info["reaction_coordinate_momentum"] > 0 for s in mixed])
    assert abs(forward_share - 0.5) < 4 * 0.5 / np.sqrt(400)
    with pytest.raises(ValueError, match="exactly one imaginary mode"):
        relaxed = ase_al.optimize_geometry(hcn(), calc)  # a minimum: no imaginary mode
        transition_state_sampling(relaxed, ase_al.freq(relaxed, calc), 10, temperature)
    # with every real mode frozen, all samples sit at the saddle point, momenta still drawn
    still = transition_state_sampling(saddle, vib, n, temperature, seed=3, freeze_below_cm1=1e4)
    for sample, moving in zip(still[:20], samples[:20], strict=True):
        np.testing.assert_allclose(sample.positions, saddle.positions, atol=1e-12)
        assert (
            sample.info["reaction_coordinate_momentum"]
            == moving.info["reaction_coordinate_momentum"]
        )


def ladder_steps(u, threshold, factor):
    """The steps a ladder takes along uncertainties ``u``: the first above the threshold,
    then each above ``factor`` times the last taken, and the last step when it is above the
    threshold."""
    steps, bar = [], threshold
    for step, x in enumerate(u):
        if x > bar:
            steps.append(step)
            bar = factor * x
    if u[-1] > threshold and (not steps or steps[-1] != len(u) - 1):
        steps.append(len(u) - 1)
    return steps


class SlidingDimer(Calculator):
    """A harmonic dimer, E = k (r - r0)² (eV, Å), whose ``energy_uncertainty`` grows slowly
    as it contracts, u = 1 + 0.2 (1.5 - r) eV: an optimisation from r = 1.5 Å never doubles
    the uncertainty of its first structure, like a complex sliding into a spurious well."""

    implemented_properties = ["energy", "forces", "energy_uncertainty"]
    k, r0 = 2.0, 0.74

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[1] - self.atoms.positions[0]
        r = float(np.linalg.norm(d))
        f1 = -2.0 * self.k * (r - self.r0) * d / r
        self.results = {
            "energy": self.k * (r - self.r0) ** 2,
            "forces": np.array([-f1, f1]),
            "energy_uncertainty": 1.0 + 0.2 * (1.5 - r),
        }


class Scaled(Calculator):
    """``factor`` × another calculator's energy and forces: every curvature scaled by it."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, calc, factor):
        super().__init__()
        self.calc, self.factor = calc, factor

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.calc
        self.results = {
            "energy": self.factor * work.get_potential_energy(),
            "forces": self.factor * work.get_forces(),
        }


def test_frequency_check_along_the_reference_modes(hcn_saddle):
    """At the HCN <-> HNC saddle point, the curvature along the reference's modes gives the
    reference's own wavenumbers back (the imaginary one negative); a surface scaled by 0.81
    has every one 10 % low: off at a 5 % tolerance, with two structures displaced along each
    mode, one way by a half to one Wigner width and the other by one to two, where the
    reference's energy rises (falls, along the reaction coordinate) as ½λa²; at a 15 %
    tolerance none is off."""
    from ase_al.samplers.modes import check_modes, frequencies_along_modes, wigner_widths

    calc, saddle, vib = hcn_saddle
    ours = frequencies_along_modes(calc, saddle, vib)
    np.testing.assert_allclose(ours, vib.frequencies, atol=1.0)  # cm-1
    assert (ours < 0).sum() == 1 and ours[0] < -800
    scaled = Scaled(calc, 0.81)
    check = check_modes(scaled, saddle, vib, 0.05, 300.0, np.random.default_rng(1))
    np.testing.assert_allclose(check.model, 0.9 * vib.frequencies, rtol=2e-3, atol=1.0)
    assert np.all(np.abs(vib.frequencies) >= 100) and list(check.off) == [0, 1, 2]
    assert len(check.displaced) == 6
    summary = check.summary()
    assert summary["n_off"] == 3 and summary["max_relative_error"] == pytest.approx(0.1, abs=3e-3)
    e0 = saddle.get_potential_energy()
    widths = wigner_widths(vib, 300.0)
    inv_sqrt_m = np.repeat(saddle.get_masses() ** -0.5, 3)
    for k in range(3):
        near, far = check.displaced[2 * k : 2 * k + 2]
        assert near.info["mode"] == far.info["mode"] == k
        assert near.info["mode_cm1"] == pytest.approx(vib.frequencies[k])
        d = vib.mass_weighted_modes[k] * inv_sqrt_m  # Cartesian direction of the mode
        amplitudes = []
        for atoms in (near, far):
            shift = (atoms.positions - saddle.positions).ravel()
            amplitude = np.dot(shift, d) / np.dot(d, d)  # mass-weighted, Å·amu^1/2
            np.testing.assert_allclose(shift, amplitude * d, atol=1e-12)
            assert atoms.info["mode_displacement"] == pytest.approx(
                np.sign(amplitude) * np.linalg.norm(shift)
            )
            mirrored = saddle.copy()  # the odd (cubic) terms cancel in the pair's mean
            mirrored.positions -= shift.reshape(-1, 3)
            energies = []
            for structure in (atoms, mirrored):
                structure.calc = calc
                energies.append(structure.get_potential_energy())
            omega = vib.angular_frequencies[k]
            harmonic = 0.5 * np.sign(omega) * omega**2 * amplitude**2  # eV
            assert np.mean(energies) - e0 == pytest.approx(harmonic, rel=0.15)
            amplitudes.append(amplitude)
        assert 0.5 * widths[k] <= abs(amplitudes[0]) <= widths[k] <= abs(amplitudes[1])
        assert abs(amplitudes[1]) <= 2 * widths[k]
        assert np.sign(amplitudes[0]) == -np.sign(amplitudes[1])
    ways = {  # which way gets the near structure is drawn
        np.sign(c.displaced[0].info["mode_displacement"])
        for c in (
            check_modes(scaled, saddle, vib, 0.05, 300.0, np.random.default_rng(seed))
            for seed in range(2, 8)
        )
    }
    assert ways == {1.0, -1.0}
    quiet = check_modes(scaled, saddle, vib, 0.15, 300.0, np.random.default_rng(1))
    assert list(quiet.off) == [] and quiet.displaced == []


def test_barrier_top_check_finds_the_top_moved_along_the_reaction_coordinate(hcn_saddle):
    """At the HCN <-> HNC saddle point, the reference's own forces put its barrier top at 0;
    a surface whose top was moved by δ along the reaction coordinate is found moved by δ
    from transition-state samples labelled with the reference (mean force along it over
    |λ|), and the top of that surface along the reaction coordinate, fitted to a scan, lies
    at δ; off when δ is more than the tolerance times the coordinate's Wigner width."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from ase_al.reactions import ShiftedBarrierTop
    from ase_al.samplers import transition_state_sampling
    from ase_al.samplers.modes import check_barrier_top, reaction_coordinate, wigner_widths

    calc, saddle, vib = hcn_saddle
    samples = transition_state_sampling(saddle, vib, 12, 300.0, seed=3, direction="random")
    for atoms in samples:
        work = atoms.copy()
        work.calc = calc
        atoms.calc = SinglePointCalculator(atoms, forces=work.get_forces())
    k, direction, curvature = reaction_coordinate(saddle, vib)
    assert k == 0 and curvature == pytest.approx(vib.angular_frequencies[0] ** 2)
    width = wigner_widths(vib, 300.0)[0]
    same = check_barrier_top(calc, samples, saddle, vib, 300.0, 0.1)
    assert abs(same.shift) < 1e-9 and not same.off
    delta = 0.02  # Å·amu^1/2
    tilted = ShiftedBarrierTop(calc, saddle, vib, delta)
    check = check_barrier_top(tilted, samples, saddle, vib, 300.0, 0.5 * delta / width)
    assert check.shift == pytest.approx(delta, rel=1e-6) and check.error < 1e-8 and check.off
    assert check.shift_A == pytest.approx(delta * np.linalg.norm(direction))
    assert check.width == pytest.approx(width) and check.n == 12
    summary = check.summary()
    assert summary["shift_in_widths"] == pytest.approx(delta / width, abs=1e-4) and summary["off"]
    assert not check_barrier_top(tilted, samples, saddle, vib, 300.0, 2 * delta / width).off
    # the top along the reaction coordinate of either surface: where a quartic fitted to a
    # scan through the saddle point is stationary; the tilted one's lies δ farther along
    q = np.linspace(-0.1, 0.1, 11)

    def top(potential):
        energies = []
        for value in q:
            atoms = Atoms(saddle.numbers, saddle.positions + value * direction.reshape(-1, 3))
            atoms.calc = potential
            energies.append(atoms.get_potential_energy())
        slope = np.polyder(np.polyfit(q, energies, 4))
        return min(np.roots(slope).real, key=abs)

    assert abs(top(calc)) < 0.2 * delta
    assert top(tilted) - top(calc) == pytest.approx(delta, rel=0.05)
    with pytest.raises(ValueError, match="first-order saddle point"):
        reaction_coordinate(saddle, type("Modes", (), {"frequencies": np.abs(vib.frequencies)}))
    with pytest.raises(ValueError, match="at least 2"):
        check_barrier_top(calc, samples[:1], saddle, vib, 300.0, 0.1)
    with pytest.raises(ValueError, match="width must be > 0"):
        ShiftedBarrierTop(calc, saddle, vib, delta, width=0.0)
    # far from the top (q = 4 Å·amu^1/2 along the coordinate) the surface is the one
    # underneath (here a cheap one, EMT, that any geometry converges on)
    from ase.calculators.emt import EMT

    far = Atoms(saddle.numbers, saddle.positions + 4.0 * direction.reshape(-1, 3))
    far.calc = ShiftedBarrierTop(EMT(), saddle, vib, delta)
    e_far = far.get_potential_energy()
    far.calc = EMT()
    assert e_far == pytest.approx(far.get_potential_energy(), abs=1e-6)
    # its forces are the gradient of its energy (central differences), near the top
    from ase.calculators.fd import calculate_numerical_forces

    near = samples[0].copy()
    near.positions += 0.4 * direction.reshape(-1, 3)
    near.calc = ShiftedBarrierTop(EMT(), saddle, vib, 0.5)
    np.testing.assert_allclose(
        near.get_forces(), calculate_numerical_forces(near, eps=1e-5), atol=1e-5
    )


def test_a_ladder_also_takes_the_uncertain_end_of_the_path():
    """With a ladder, the path's end (the model's own minimum) is taken when it is above the
    threshold though never twice as uncertain as the first structure taken; not when it is
    below the threshold, and not twice when the ladder took it already."""
    start = Atoms("H2", [(0, 0, 0), (0, 0, 1.5)])
    result = relax_until_uncertain(start, SlidingDimer(), 0.5, ladder=2.0)
    u = [frame.info["uncertainty"] for frame in result.path]
    assert result.converged and len(u) > 2 and max(u) < 2 * u[0]
    assert abs(result.path[-1].get_distance(0, 1) - SlidingDimer.r0) < 1e-3
    assert result.uncertain_steps == [0, len(u) - 1] == ladder_steps(u, 0.5, 2.0)
    np.testing.assert_allclose(result.uncertain[-1].positions, result.path[-1].positions)
    # above every structure's uncertainty: nothing taken, the end included
    assert relax_until_uncertain(start, SlidingDimer(), 1.2, ladder=2.0).uncertain == []
    # a ladder factor small enough to take every step takes the end once
    every = relax_until_uncertain(start, SlidingDimer(), 0.5, ladder=1.0 + 1e-9)
    assert every.uncertain_steps == sorted(set(every.uncertain_steps))
    assert every.uncertain_steps[-1] == len(every.path) - 1
    # without a ladder, only the first
    assert relax_until_uncertain(start, SlidingDimer(), 0.5).uncertain_steps == [0]


class CollapsingDimer(SlidingDimer):
    """SlidingDimer with its minimum at 0.1 Å: a hole in a model's surface."""

    r0 = 0.1


def test_a_relaxation_stops_before_atoms_collapse_into_a_hole():
    """An optimisation into a model's hole (two H atoms pulled to 0.1 Å) stops where they come
    within COLLAPSE (0.6) of their covalent radii's sum, 0.37 Å: nothing past it is in the path
    or taken for labelling (GFN2-xTB puts such structures tens to thousands of eV high)."""
    from ase.data import covalent_radii

    from ase_al.samplers.relax import COLLAPSE, collapsed

    start = Atoms("H2", [(0, 0, 0), (0, 0, 1.5)])
    result = relax_until_uncertain(start, CollapsingDimer(), 0.5, ladder=2.0)
    limit = COLLAPSE * 2 * covalent_radii[1]
    r = [frame.get_distance(0, 1) for frame in result.path]
    assert result.collapsed and not result.converged and result.summary()["collapsed"]
    assert min(r) >= limit and r[-1] < 0.6  # it got close to the hole, not into it
    assert all(frame.get_distance(0, 1) >= limit for frame in result.uncertain)
    assert collapsed(Atoms("H2", [(0, 0, 0), (0, 0, 0.9 * limit)]))
    assert not collapsed(Atoms("H2", [(0, 0, 0), (0, 0, 0.74)])) and not collapsed(Atoms("H"))
    # a physical path is not stopped
    assert not relax_until_uncertain(start, SlidingDimer(), 0.5, ladder=2.0).collapsed
    # such structures labelled before are left out of training, the rest kept in order
    from ase_al.active_learning.learner import trainable

    images = [Atoms("H2", [(0, 0, 0), (0, 0, r)]) for r in (0.74, 0.1, 1.2, 0.3, 0.5)]
    assert [a.get_distance(0, 1) for a in trainable(images)] == pytest.approx([0.74, 1.2, 0.5])


def test_learner_starts_from_both_minima_and_the_transition_state(tmp_path):
    """ActiveLearner([HCN, HNC, transition state]): each structure is a starting point (the
    saddle refined with the reference and sampled by transition-state sampling), the samples
    are shared by weight, KREG's reference geometry is the lowest minimum (HCN), and the
    initial data and labels cover both isomers."""
    import ase_al
    from ase_al import InitialData, Sampling, Selection
    from ase_al.active_learning.starting_points import build_starting_points

    calc = ase_al.methods("GFN2-xTB")
    reactant = hcn()
    reactant.info["weight"] = 2.0
    product = Atoms("HCN", [(0.0, 0.0, 2.16), (0.0, 0.0, 0.0), (0.0, 0.0, 1.16)])
    guess = Atoms("HCN", [(0.9, 0.0, 0.0), (0.0, 0.0, -0.58), (0.0, 0.0, 0.58)])
    guess.info["transition_state"] = True
    points = build_starting_points([reactant, product, guess], calc, tmp_path / "points")
    assert [p.saddle for p in points] == [False, False, True]
    assert (points.points[2].vibrations.frequencies < 0).sum() == 1
    assert points.reference is points.points[0].atoms  # HCN lies below HNC
    assert points.counts(300) == [150, 75, 75] and points.counts(7) == [3, 2, 2]
    samples = points.sample(300, 300.0, np.random.default_rng(0))
    origin = np.array([s.info.get("starting_point") for s in samples])
    h_to_c = np.array([s.get_distance(0, 1) < s.get_distance(0, 2) for s in samples])
    assert h_to_c[origin == 0].all() and not h_to_c[origin == 1].any()
    at_saddle = [s for s, k in zip(samples, origin, strict=True) if k == 2]
    assert len(at_saddle) == 75
    assert all("reaction_coordinate_momentum" in s.info for s in at_saddle)
    with pytest.raises(ValueError, match="all transition states"):
        type(points)([points.points[2]])
    # a short run from all three
    learner = ase_al.ActiveLearner(
        [reactant, product, guess],
        calc,
        workdir=tmp_path / "al",
        initial_data=InitialData(batch=40, max_points=40),
        sampling=Sampling(
            n_trajectories=8,
            options={"max_time_fs": 10.0},
            relax_starting_points=True,
            frequency_tolerance=0.05,
            barrier_top_tolerance=0.1,
            barrier_top_temperatures=(300, 1500),
            barrier_top_samples=12,
        ),
        selection=Selection(max_iterations=1),
        progress=False,
    )
    pair = learner.run()
    labelled = learner.labelled()
    # every starting structure was also optimised on the iteration's model (the saddle point
    # by Sella) to the end of its path; the path's first structure above the threshold was
    # labelled, and then each twice as uncertain as the last labelled
    iteration = learner._state()["iterations"][0]
    relaxations = iteration["relaxations"]
    assert [r["starting_point"] for r in relaxations] == [0, 1, 2]
    rows = list(connect(tmp_path / "al" / "labelled.db").select(sampled_by="relaxation"))
    assert len(rows) == sum(len(r["uncertain_steps"]) for r in relaxations)
    for r in relaxations:
        name = f"{r['starting_point']:02d}.traj"
        path = read(tmp_path / "al" / "iteration_1" / "relaxations" / name, ":")
        u = [frame.info["uncertainty"] for frame in path]
        assert r["uncertain_steps"] == ladder_steps(u, iteration["threshold"], 2.0)
        # the start's reference energy does not travel along the path
        assert set(path[-1].info) == {"model_energy", "uncertainty"}
        assert r["found_uncertain"] == bool(r["uncertain_steps"])
    # each path's end below the threshold (the model's own minimum or saddle point) was
    # labelled as an overconfidence check, and counts in the checks' statistics
    ends = {
        row.starting_point: row
        for row in connect(tmp_path / "al" / "labelled.db").select(sampled_by="relaxation end")
    }
    assert sorted(ends) == [r["starting_point"] for r in relaxations if r["end_checked"]]
    assert ends, "no relaxation ended below the threshold"
    for index, row in ends.items():
        path = read(tmp_path / "al" / "iteration_1" / "relaxations" / f"{index:02d}.traj", ":")
        np.testing.assert_allclose(row.positions, path[-1].positions)
        assert row.source == "check" and row.uid == f"check001-end{index:02d}"
        assert row.uncertainty == pytest.approx(path[-1].info["uncertainty"])
        assert row.uncertainty <= iteration["threshold"]
    for r in relaxations:
        path = read(
            tmp_path / "al" / "iteration_1" / "relaxations" / f"{r['starting_point']:02d}.traj", ":"
        )
        if not r["end_checked"]:  # taken as uncertain instead
            assert r["uncertain_steps"][-1] == len(path) - 1
    assert iteration["n_checks"] == len(ends) + 5
    # their true errors, by starting point (what lowers a point's relaxation threshold)
    assert [e["starting_point"] for e in iteration["relaxation_ends"]] == sorted(ends)
    for e in iteration["relaxation_ends"]:
        row = ends[e["starting_point"]]
        true = abs(pair.predict([row.toatoms()], forces=False)["energy"][0] - row.energy)
        assert e["error"] == pytest.approx(true, abs=1e-6)
        assert e["uncertainty"] == pytest.approx(row.uncertainty, rel=1e-3, abs=1e-6)
    # each relaxation against the reference: the model's energy change from the start to the
    # (labelled) end minus the reference's, the held-out test of the model's stationary points
    errors = iteration["relaxation_errors"]
    assert sorted(errors) == ["0", "1", "2"]
    for r in relaxations:
        index = r["starting_point"]
        path = read(tmp_path / "al" / "iteration_1" / "relaxations" / f"{index:02d}.traj", ":")
        end_rows = [
            row
            for row in connect(tmp_path / "al" / "labelled.db").select()
            if np.abs(row.positions - path[-1].positions).max() < 1e-6
        ]
        assert end_rows, "the end of every relaxation is labelled in its iteration"
        start = path[0].copy()
        start.calc = calc
        expected = (path[-1].info["model_energy"] - path[0].info["model_energy"]) - (
            end_rows[0].energy - start.get_potential_energy()
        )
        assert errors[str(index)] == pytest.approx(expected, abs=1e-6)
    run = ase_al.ALRun(tmp_path / "al")
    worst = max(abs(e) for e in errors.values())
    collapsed = any(r["collapsed"] for r in relaxations)
    assert run.validated_iteration(worst + 1e-9) == (None if collapsed else 1)
    assert run.validated_iteration(0.999 * worst) is None
    with pytest.raises(ValueError, match="no target_error"):
        run.validated_iteration()
    # each starting structure's modes on the model against the reference's: the modes off by
    # more than 5 % labelled, displaced both ways along the reference's mode
    frequency_checks = iteration["frequency_checks"]
    assert [c["starting_point"] for c in frequency_checks] == [0, 1, 2]
    displaced = list(connect(tmp_path / "al" / "labelled.db").select(sampled_by="frequency check"))
    assert len(displaced) == 2 * sum(c["n_off"] for c in frequency_checks) > 0
    for row in displaced:
        point = points.points[row.starting_point]
        check = frequency_checks[row.starting_point]
        off = {m["mode"]: m for m in check["off"]}
        assert row.source == "sampler" and row.mode in off
        assert row.mode_cm1 == pytest.approx(off[row.mode]["reference_cm1"], abs=0.05)
        model_cm1, reference_cm1 = off[row.mode]["model_cm1"], off[row.mode]["reference_cm1"]
        assert abs(model_cm1 - reference_cm1) > 0.05 * abs(reference_cm1)
        shift = (row.positions - point.atoms.positions).ravel()
        mode = point.vibrations.modes[row.mode].ravel()  # unit Cartesian
        assert abs(np.dot(shift, mode)) == pytest.approx(np.linalg.norm(shift), rel=1e-9)
        assert abs(row.mode_displacement) == pytest.approx(np.linalg.norm(shift))
    # the barrier top: 12 transition-state samples (barrier_top_samples) labelled at the
    # saddle point at each temperature asked for, and the iteration's model's mean force
    # along the reference's reaction coordinate over each set against the reference's gives
    # where its top lies
    from ase_al.samplers import transition_state_sampling
    from ase_al.samplers.modes import check_barrier_top, mode_directions, wigner_widths

    barriers = iteration["barrier_checks"]
    assert [(b["starting_point"], b["temperature"]) for b in barriers] == [(2, 300), (2, 1500)]
    saddle = points.points[2]
    k = int(np.argmin(saddle.vibrations.frequencies))
    mode = saddle.vibrations.mass_weighted_modes[k]
    sqrt_m = np.repeat(saddle.atoms.get_masses(), 3) ** 0.5
    spread = {}
    for check in barriers:
        barrier_rows = list(
            connect(tmp_path / "al" / "labelled.db").select(
                sampled_by="barrier-top check", barrier_temperature=check["temperature"]
            )
        )
        assert len(barrier_rows) == check["n_samples"] == 12
        for row in barrier_rows:
            assert row.source == "barrier check" and row.starting_point == 2
            assert row.uid.startswith("barrier001-") and row.iteration == 1
            shift = (row.positions - saddle.atoms.positions).ravel()
            assert np.linalg.norm(shift) > 1e-3
            assert abs(np.dot(mode, sqrt_m * shift)) < 1e-8  # on the reference's dividing surface
        # the set is the transition-state sampling at its temperature with its seed
        redrawn = transition_state_sampling(
            saddle.atoms,
            saddle.vibrations,
            12,
            check["temperature"],
            seed=barrier_rows[0].barrier_seed,
            direction="random",
            freeze_below_cm1=learner.sampling.freeze_below_cm1,
        )
        assert {row.barrier_seed for row in barrier_rows} == {barrier_rows[0].barrier_seed}
        np.testing.assert_allclose(
            sorted(row.positions.ravel().tolist() for row in barrier_rows),
            sorted(atoms.positions.ravel().tolist() for atoms in redrawn),
            atol=1e-9,
        )
        many = transition_state_sampling(
            saddle.atoms, saddle.vibrations, 4000, check["temperature"], seed=1
        )
        spread[check["temperature"]] = np.mean(
            [np.sum((atoms.positions - saddle.atoms.positions) ** 2) for atoms in many]
        )
        again = check_barrier_top(
            pair,
            [row.toatoms() for row in barrier_rows],
            saddle.atoms,
            saddle.vibrations,
            300.0,
            0.1,
        )
        assert check["shift"] == pytest.approx(again.shift, abs=1e-5)
        assert check["off"] == (abs(again.shift) > 0.1 * again.width)
        assert check["width"] == pytest.approx(again.width)  # widths at 300 K for both
    # hotter samples lie farther from the saddle point: each transverse mode's Wigner width²
    # grows by coth(ħω/2kT), at 1500 K against 300 K by 1.34 (2001 cm-1) and 1.23 (2386)
    real = saddle.vibrations.frequencies > 0
    lengths = np.sum(mode_directions(saddle.atoms, saddle.vibrations)[real] ** 2, axis=1)
    wigner = {t: np.sum(wigner_widths(saddle.vibrations, t)[real] ** 2 * lengths) for t in spread}
    assert spread[1500] / spread[300] == pytest.approx(wigner[1500] / wigner[300], rel=0.05)
    assert 1.2 < wigner[1500] / wigner[300] < 1.35
    # a structure found along a trajectory (labelled, or checked as certain) says which
    # starting point that trajectory's initial condition came from: 4, 2 and 2 of the 8
    expected = np.repeat([0, 1, 2], points.counts(8))
    along = [
        row
        for row in connect(tmp_path / "al" / "labelled.db").select()
        if row.get("trajectory") is not None
    ]
    assert {row.source for row in along} == {"sampler", "check"}
    assert {row.starting_point for row in along} != {0}
    for row in along:
        assert row.starting_point == expected[row.trajectory]
    for row in rows:
        assert row.uncertainty > iteration["threshold"]
        assert pair.predict([row.toatoms()], forces=False)["energy_uncertainty"][0] == (
            pytest.approx(row.uncertainty, rel=1e-6)
        )
    # the optimiser alone: with no threshold it converges on the model; with one inside the
    # path's range it stops at the path's first structure above it
    free = relax_until_uncertain(product, pair, np.inf)
    assert free.converged and free.uncertain == [] and not free.end_labelled
    # the same path again, its end now labelled: said so (the learner then does not check it)
    assert relax_until_uncertain(product, pair, np.inf, labelled=[free.path[-1]]).end_labelled
    end = free.path[-1].copy()
    end.calc = pair.members[0]
    assert np.linalg.norm(end.get_forces(), axis=1).max() < 1e-3
    u = np.array([frame.info["uncertainty"] for frame in free.path])
    assert len(u) > 3
    cut = 0.5 * (u.min() + u.max())
    first = int(np.argmax(u > cut))
    stopped = relax_until_uncertain(product, pair, cut)
    assert stopped.uncertain_steps == [first] and stopped.steps == first
    assert not stopped.converged
    np.testing.assert_allclose(stopped.uncertain[0].positions, free.path[first].positions)
    # once that structure is labelled, the path goes on to the next uncertain one
    later = [j for j in range(first + 1, len(u)) if u[j] > cut]
    again = relax_until_uncertain(product, pair, cut, labelled=[stopped.uncertain[0], hcn()])
    assert again.uncertain_steps == later[:1]
    # with a ladder, the whole path, and every structure twice as uncertain as the last taken
    laddered = relax_until_uncertain(product, pair, u.min(), ladder=2.0)
    assert laddered.converged and laddered.steps == len(u) - 1
    assert laddered.uncertain_steps == ladder_steps(u, u.min(), 2.0)
    with pytest.raises(ValueError, match="energy_uncertainty"):
        relax_until_uncertain(product, pair.members[0], 1.0)
    with pytest.raises(ValueError, match="ladder must be a factor above 1"):
        relax_until_uncertain(product, pair, 1.0, ladder=1.0)
    near_c = [a.get_distance(0, 1) < a.get_distance(0, 2) for a in labelled]
    assert 0 < sum(near_c) < len(near_c)  # both isomers in the training data
    reference = read(tmp_path / "al" / "equilibrium.traj")
    assert reference.get_distance(0, 1) < reference.get_distance(0, 2)  # HCN
    bad = Atoms("HNC", guess.positions)
    with pytest.raises(ValueError, match="starting structure 1"):
        ase_al.ActiveLearner([reactant, bad], calc, workdir=tmp_path / "bad")


def test_learner_names_the_starting_structure_wrongly_marked_as_a_saddle_point(tmp_path):
    """A minimum marked ``info['transition_state']`` is refused in one line naming it."""
    import ase_al
    from ase_al.active_learning.starting_points import build_starting_points

    calc = ase_al.methods("GFN2-xTB")
    minimum = ase_al.optimize_geometry(hcn(), calc, fmax=1e-3)
    marked = minimum.copy()
    marked.info["transition_state"] = True
    with pytest.raises(
        TransitionStateError, match="starting structure 1 is marked.*minimum"
    ) as err:
        build_starting_points([minimum.copy(), marked], calc, tmp_path)
    assert err.value.vibrations.frequencies.min() > -50.0  # what the search found, kept


def test_a_relaxation_ending_off_the_target_gets_its_own_lower_threshold(tmp_path):
    """A checked relaxation end whose true error exceeds the target lowers that starting
    point's relaxation threshold to 0.7 × its uncertainty (not below the target), raised back
    by 1/0.7 as its ends meet the target and dropped at the run's; and the relaxation then
    labels the path by its own threshold (the ladder from the first structure above it), its
    end being checked only below it."""
    from ase_al import Sampling, Selection
    from ase_al.active_learning import checks
    from ase_al.active_learning.sampling import RELAXATION_LADDER, SamplingStage
    from ase_al.active_learning.starting_points import StartingPoint

    target, threshold = 0.02, 0.13
    off = [{"starting_point": 2, "uncertainty": 0.096, "error": 0.081}]
    within = [{"starting_point": 2, "uncertainty": 0.05, "error": 0.01}]
    lowered = checks.adjusted_relaxation_thresholds({}, off, threshold, target)
    assert lowered == {2: pytest.approx(0.7 * 0.096)}
    # again off: from the smaller of its own threshold and the end's uncertainty
    again = checks.adjusted_relaxation_thresholds(lowered, off, threshold, target)
    assert again == {2: pytest.approx(0.7 * 0.7 * 0.096)}
    floor = checks.adjusted_relaxation_thresholds({2: 0.021}, off, threshold, target)
    assert floor == {2: pytest.approx(target)}
    raised = checks.adjusted_relaxation_thresholds(again, within, threshold, target)
    assert raised == {2: pytest.approx(0.7 * 0.096)}
    assert checks.adjusted_relaxation_thresholds({2: 0.1}, within, threshold, target) == {}
    # other points and runs without a target are left alone
    assert checks.adjusted_relaxation_thresholds({0: 0.05}, off, threshold, None) == {0: 0.05}
    assert checks.adjusted_relaxation_thresholds({0: 0.05}, off, threshold, target)[0] == 0.05

    # the relaxation of a point with its own threshold: SlidingDimer's uncertainty runs from
    # 1.0 (r = 1.5 Å) to 1.15 (r = 0.74 Å), all below the run's threshold of 1.2
    stage = SamplingStage(
        Sampling(relax_starting_points=True),
        Selection(),
        Atoms("H2"),
        None,
        np.random.default_rng(0),
        False,
    )
    start = Atoms("H2", [(0, 0, 0), (0, 0, 1.5)])
    points = [StartingPoint(start, None), StartingPoint(start.copy(), None)]
    found, summaries, ends = stage.relaxations(SlidingDimer(), 1.2, points, tmp_path, [], {1: 1.05})
    assert "threshold" not in summaries[0] and summaries[1]["threshold"] == 1.05
    assert summaries[0]["uncertain_steps"] == []
    path = read(tmp_path / "01.traj", ":")
    u = [frame.info["uncertainty"] for frame in path]
    assert summaries[1]["uncertain_steps"] == ladder_steps(u, 1.05, RELAXATION_LADDER)
    found = [a for a in found if a.info["sampled_by"] == "relaxation"]  # not along the path
    assert len(found) == len(summaries[1]["uncertain_steps"]) >= 1
    assert {a.info["starting_point"] for a in found} == {1}
    # the end of point 0 is below the run's threshold: checked; point 1's is above its own
    assert [end.info["starting_point"] for end in ends] == [0]


def test_along_path_spreads_steps_by_distance_from_the_start():
    """Steps at the first frame reaching j·D/(n+1) of the end's RMS displacement D, n =
    min(at_most, D // spacing); start, end and skipped steps left out."""
    from ase_al.samplers.relax import along_path

    # 100 frames drifting 0.0002 Å a step (the flat part), then 10 sliding 0.05 Å a step
    x = np.concatenate([0.0002 * np.arange(100), 0.0198 + 0.05 * np.arange(1, 11)])
    path = [Atoms("H2", [(0, 0, 0), (0, 0, 1.0 + 2 * xi)]) for xi in x]
    rms = x * np.sqrt(2)  # one of the two atoms moves by 2 x
    assert rms[-1] == pytest.approx(0.7351, abs=1e-4)
    steps = along_path(path, 0.05, 8)
    assert len(steps) == 8
    for j, step in enumerate(steps, start=1):
        level = j * rms[-1] / 9
        assert rms[step] >= level - 1e-12 and rms[step - 1] < level
    assert min(steps) >= 100 and steps == sorted(steps)  # on the slide, not the drift
    three = along_path(path, 0.05, 3)  # at a quarter, half and three quarters of D
    assert [int(np.argmax(rms >= f * rms[-1])) for f in (0.25, 0.5, 0.75)] == three
    assert along_path(path, 0.2, 8) == along_path(path, 0.2, 3)  # 0.735 // 0.2 = 3
    assert len(along_path(path, 1.0, 8)) == 0  # within the spacing of the start
    skipped = along_path(path, 0.05, 8, skip=steps[:2])
    assert skipped == steps[2:]
    with pytest.raises(ValueError, match="spacing"):
        along_path(path, 0.0, 8)


def test_structures_are_taken_along_a_relaxation_that_moved(tmp_path):
    """A relaxation whose end lies more than PATH_SPACING from its start gets structures
    along its path (certain ones too), one per PATH_SPACING up to PATH_SAMPLES; a start at
    the model's minimum gets none."""
    from ase_al import Sampling, Selection
    from ase_al.active_learning.sampling import PATH_SAMPLES, PATH_SPACING, SamplingStage
    from ase_al.active_learning.starting_points import StartingPoint
    from ase_al.samplers.relax import along_path

    stage = SamplingStage(
        Sampling(relax_starting_points=True),
        Selection(),
        Atoms("H2"),
        None,
        np.random.default_rng(0),
        False,
    )
    sliding = Atoms("H2", [(0, 0, 0), (0, 0, 1.5)])
    at_minimum = Atoms("H2", [(0, 0, 0), (0, 0, SlidingDimer.r0)])
    points = [StartingPoint(at_minimum, None), StartingPoint(sliding, None)]
    # the threshold is above every uncertainty: nothing is taken as uncertain
    found, summaries, ends = stage.relaxations(SlidingDimer(), 2.0, points, tmp_path, [])
    along = [a for a in found if a.info["sampled_by"] == "relaxation path"]
    assert len(found) == len(along) and {a.info["starting_point"] for a in along} == {1}
    assert "path_samples" not in summaries[0]
    path = read(tmp_path / "01.traj", ":")
    r = [frame.get_distance(0, 1) for frame in path]
    assert r[0] == pytest.approx(1.5) and r[-1] == pytest.approx(SlidingDimer.r0, abs=0.01)
    # the bond shrinks by 0.76 Å, each atom moving half of it: RMS 0.38 Å, past the spacing;
    # BFGS gets there in a few long steps, so the levels fall on fewer distinct frames
    steps = along_path(path, PATH_SPACING, PATH_SAMPLES)
    assert (1.5 - r[-1]) / 2 > PATH_SPACING and len(steps) >= 1
    assert len(along) == summaries[1]["path_samples"] == len(steps)
    for atoms, step in zip(along, steps, strict=True):
        np.testing.assert_allclose(atoms.positions, path[step].positions)
        assert r[-1] < atoms.get_distance(0, 1) < 1.5
    for atoms in along:  # the path's own frames, with the model's energy and uncertainty
        assert atoms.info["uncertainty"] < 2.0 and "model_energy" in atoms.info
    assert [end.info["starting_point"] for end in ends] == [0, 1]


def test_structures_from_the_models_relaxations_are_always_trained():
    """The learner marks what it labelled on the model's relaxation paths (as read back
    from labelled.db, or fresh) so that no network's validation draw leaves them out;
    the rest, and collapsed structures (left out of training), are not marked."""
    from ase_al.active_learning.learner import trainable

    def labelled(sampled_by, r=0.74, nested=True):
        atoms = Atoms("H2", [(0, 0, 0), (0, 0, r)])
        pairs = {"iteration": 3} if sampled_by is None else {"sampled_by": sampled_by}
        atoms.info = {"key_value_pairs": pairs} if nested else dict(pairs)
        return atoms

    images = [
        labelled(None),
        labelled("relaxation"),
        labelled("relaxation path"),
        labelled("relaxation end"),
        labelled("barrier-top check"),
        labelled("relaxation path", nested=False),
        labelled("relaxation path", r=0.1),  # collapsed: not trained on at all
    ]
    kept = trainable(images)
    assert len(kept) == 6
    assert [bool(a.info.get("always_train")) for a in kept] == [
        False,
        True,
        True,
        True,
        False,
        True,
    ]
