"""AIQM2 and its parts: the ANI network-file reader, GFN2-xTB*, and AIQM2 itself."""

from __future__ import annotations

import math
import pickle
import sys
import types

import numpy as np
import pytest
from ase.build import molecule

torch = pytest.importorskip("torch")

from ase_al.calculators.ani_file import ANIEnsemble, read_ani_file  # noqa: E402

RCR, RCA = 5.2, 3.5
ETA_R, SHF_R = 16.0, [0.9, 1.7]
ETA_A, ZETA, SHF_A, SHF_Z = 8.0, 32.0, [0.9, 1.9], [0.4, 2.1]
SPECIES = ["H", "O"]


def _fake_torchani(monkeypatch):
    """Modules named like torchani 2.2's, holding look-alike classes, so that pickle records the
    globals MLatom's files hold (torchani.aev.AEVComputer, torchani.utils.EnergyShifter)."""
    package = types.ModuleType("torchani")
    aev = types.ModuleType("torchani.aev")
    utils = types.ModuleType("torchani.utils")

    class AEVComputer(torch.nn.Module):
        pass

    class EnergyShifter(torch.nn.Module):
        pass

    AEVComputer.__module__, AEVComputer.__qualname__ = "torchani.aev", "AEVComputer"
    EnergyShifter.__module__, EnergyShifter.__qualname__ = "torchani.utils", "EnergyShifter"
    aev.AEVComputer, utils.EnergyShifter = AEVComputer, EnergyShifter
    package.aev, package.utils = aev, utils
    for name, module in (("torchani", package), ("torchani.aev", aev), ("torchani.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
    return AEVComputer, EnergyShifter


def _write_network_file(path, monkeypatch, seed=0):
    """A small ANI network file in the layout of MLatom's AIQM2 cv*.pt."""
    AEVComputer, EnergyShifter = _fake_torchani(monkeypatch)
    g = torch.Generator().manual_seed(seed)
    aev = AEVComputer()
    aev.register_buffer("EtaR", torch.tensor([ETA_R]).view(-1, 1))
    aev.register_buffer("ShfR", torch.tensor(SHF_R).view(1, -1))
    aev.register_buffer("EtaA", torch.tensor([ETA_A]).view(-1, 1, 1, 1))
    aev.register_buffer("Zeta", torch.tensor([ZETA]).view(1, -1, 1, 1))
    aev.register_buffer("ShfA", torch.tensor(SHF_A).view(1, 1, -1, 1))
    aev.register_buffer("ShfZ", torch.tensor(SHF_Z).view(1, 1, 1, -1))
    aev.Rcr, aev.Rca, aev.num_species = RCR, RCA, len(SPECIES)
    length = len(SPECIES) * len(SHF_R) + 3 * len(SHF_A) * len(SHF_Z)
    # as in MLatom's files: the modules as first built under "network", the trained weights
    # as a state dict under "nn"; the reader must take the latter
    network, trained = {}, {}
    for symbol in SPECIES:
        for store in (network, trained):
            layers = torch.nn.Sequential(
                torch.nn.Linear(length, 5), torch.nn.GELU(), torch.nn.Linear(5, 1)
            )
            with torch.no_grad():
                for p in layers.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            store[symbol] = layers
    shifter = EnergyShifter()
    shifter.register_buffer("self_energies", torch.tensor([-0.5, -75.0], dtype=torch.float64))
    shifter.fit_intercept = False
    torch.save(
        {
            "network": network,
            "nn": torch.nn.ModuleDict(trained).state_dict(),
            "args": {"species_order": SPECIES},
            "AEV_computer": aev,
            "energy_shifter": shifter,
        },
        path,
    )
    return trained


def _reference_energy(network, symbols, positions) -> float:
    """The ANI energy (Hartree) from its defining sums, loop by loop in numpy, with the AEV
    constants as the file stores them (float32)."""
    f32 = np.float32
    eta_r, shf_r = float(f32(ETA_R)), [float(f32(v)) for v in SHF_R]
    eta_a, zeta = float(f32(ETA_A)), float(f32(ZETA))
    shf_a, shf_z = [float(f32(v)) for v in SHF_A], [float(f32(v)) for v in SHF_Z]

    def fc(r, rc):
        return 0.5 * math.cos(math.pi * r / rc) + 0.5

    n = len(symbols)
    total = 0.0
    pairs = [(a, b) for a in range(2) for b in range(a, 2)]
    for i in range(n):
        radial = np.zeros((2, len(SHF_R)))
        angular = np.zeros((3, len(SHF_A), len(SHF_Z)))
        for j in range(n):
            r = np.linalg.norm(positions[j] - positions[i])
            if j != i and r <= RCR:
                s = SPECIES.index(symbols[j])
                radial[s] += [0.25 * math.exp(-eta_r * (r - m) ** 2) * fc(r, RCR) for m in shf_r]
        for j in range(n):
            for k in range(j + 1, n):
                if i in (j, k):
                    continue
                vj, vk = positions[j] - positions[i], positions[k] - positions[i]
                rj, rk = np.linalg.norm(vj), np.linalg.norm(vk)
                if rj > RCA or rk > RCA:
                    continue
                theta = math.acos(0.95 * np.dot(vj, vk) / (rj * rk))
                pair = tuple(sorted((SPECIES.index(symbols[j]), SPECIES.index(symbols[k]))))
                for a, centre_a in enumerate(shf_a):
                    for z, centre_z in enumerate(shf_z):
                        angular[pairs.index(pair), a, z] += (
                            2
                            * ((1 + math.cos(theta - centre_z)) / 2) ** zeta
                            * math.exp(-eta_a * ((rj + rk) / 2 - centre_a) ** 2)
                            * fc(rj, RCA)
                            * fc(rk, RCA)
                        )
        x = torch.tensor(np.concatenate([radial.ravel(), angular.ravel()]), dtype=torch.float64)
        with torch.no_grad():
            total += float(network[symbols[i]].double()(x)[0])
        total += {"H": -0.5, "O": -75.0}[symbols[i]]
    return total


@pytest.fixture
def network_file(tmp_path, monkeypatch):
    path = tmp_path / "cv0.pt"
    network = _write_network_file(path, monkeypatch)
    monkeypatch.undo()  # the reader must not need the look-alike torchani modules
    return path, network


def test_reader_reproduces_the_ani_energy_and_its_forces(network_file):
    path, network = network_file
    params = read_ani_file(path)
    assert params.species == SPECIES
    assert params.self_energies == {"H": -0.5, "O": -75.0}
    ensemble = ANIEnsemble([params])
    atoms = molecule("H2O")
    atoms += molecule("H2O")
    atoms.positions[3:] += (2.4, 0.3, 0.2)  # a dimer: radial and angular terms across species
    species = torch.tensor(ensemble.species_index(atoms.get_chemical_symbols()))
    positions = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    energy = ensemble.energies(species, positions)[0]
    expected = _reference_energy(network, atoms.get_chemical_symbols(), atoms.positions)
    assert float(energy) == pytest.approx(expected, abs=1e-10)
    (gradient,) = torch.autograd.grad(energy, positions)
    h = 1e-5
    for atom, axis in ((0, 0), (2, 1), (4, 2)):
        shifted = []
        for sign in (1, -1):
            p = atoms.positions.copy()
            p[atom, axis] += sign * h
            shifted.append(_reference_energy(network, atoms.get_chemical_symbols(), p))
        assert float(gradient[atom, axis]) == pytest.approx(
            (shifted[0] - shifted[1]) / (2 * h), abs=1e-7
        )


def test_reader_refuses_other_objects_and_names_uncovered_elements(network_file, tmp_path):
    path, _ = network_file
    with pytest.raises(ValueError, match="no network for element.*N.*cover H, O"):
        ANIEnsemble([read_ani_file(path)]).species_index(["H", "N"])

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled",))

    bad = tmp_path / "bad.pt"
    torch.save({"network": Evil()}, bad)
    with pytest.raises(ValueError, match="unexpected object .*print"):
        read_ani_file(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_ani_file(tmp_path / "missing.pt")


def test_gfn2_xtb_star_is_gfn2_without_d4():
    pytest.importorskip("tblite")
    pytest.importorskip("dftd4")
    from ase_al.calculators import d4_dispersion, methods

    atoms = molecule("CH3CH2OH")
    star = atoms.copy()
    star.calc = methods("GFN2-xTB*")
    full = atoms.copy()
    full.calc = methods("GFN2-xTB")
    difference = full.get_potential_energy() - star.get_potential_energy()
    # ethanol's GFN2 D4 energy is about -0.1 eV: the difference is dispersion-sized ...
    assert -0.3 < difference < -0.02
    # ... and close to D4 with GFN2's damping evaluated on its own (self-consistent D4 in
    # GFN2 differs from the non-self-consistent term through the charges it responds to)
    d4 = atoms.copy()
    d4.calc = d4_dispersion(params={"s6": 1.0, "s8": 2.7, "a1": 0.52, "a2": 5.0, "s9": 5.0})
    # (measured: -0.064 eV against -0.072 eV)
    assert difference == pytest.approx(d4.get_potential_energy(), rel=0.2)
    forces = star.get_forces()
    h = 1e-4
    for atom, axis in ((0, 0), (3, 2)):
        energies = []
        for sign in (1, -1):
            probe = atoms.copy()
            probe.positions[atom, axis] += sign * h
            probe.calc = methods("GFN2-xTB*")
            energies.append(probe.get_potential_energy())
        assert forces[atom, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=2e-4)
    assert pickle.loads(pickle.dumps(star.calc)).method_name == "GFN2-xTB*"


def _aiqm2_or_skip():
    from ase_al.calculators import methods

    try:
        return methods("AIQM2")
    except FileNotFoundError as err:
        pytest.skip(f"AIQM2 parameters not installed ({err})")


def test_aiqm2_forces_equal_finite_differences_and_report_spread():
    pytest.importorskip("tblite")
    pytest.importorskip("dftd4")
    calc = _aiqm2_or_skip()
    atoms = molecule("CH3OH")
    atoms.rattle(0.05, seed=1)
    atoms.calc = calc
    forces = atoms.get_forces()
    spread = calc.results["energy_uncertainty"]
    assert 0 < spread < 0.1  # eV: eight networks agree to within chemical accuracy here
    h = 1e-4
    for atom, axis in ((0, 0), (1, 1), (4, 2)):
        energies = []
        for sign in (1, -1):
            probe = atoms.copy()
            probe.positions[atom, axis] += sign * h
            probe.calc = calc
            energies.append(probe.get_potential_energy())
        assert forces[atom, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=3e-4)
    copy = pickle.loads(pickle.dumps(calc))
    probe = atoms.copy()
    probe.calc = copy
    assert probe.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    h2s = molecule("SH2")
    h2s.calc = calc
    with pytest.raises(ValueError, match="no network for element.*S"):
        h2s.get_potential_energy()


def test_aiqm2_names_missing_parameters(tmp_path):
    from ase_al.calculators import methods

    with pytest.raises(FileNotFoundError, match=r"cv0\.pt.*missing.*pip install --no-deps mlatom"):
        methods("AIQM2", model_dir=tmp_path)
    with pytest.raises(ValueError, match="ODM2"):
        methods("AIQM1")


def test_aiqm2_in_workflows_optimisation_frequencies_labels_and_delta_learning(tmp_path):
    """AIQM2 where a calculator goes: optimize_geometry/freq, ground-state MD, labels from
    worker processes, the learner's reference, the baseline of a Composite (Δ-learning on top
    of AIQM2)."""
    pytest.importorskip("tblite")
    pytest.importorskip("dftd4")
    _aiqm2_or_skip()
    import ase_al
    from ase_al.calculators import Composite, methods
    from ase_al.labelling import label

    calc = methods("AIQM2")
    eq = ase_al.optimize_geometry(molecule("H2O"), calc, fmax=1e-3)
    vib = ase_al.freq(eq, calc)
    real = np.sort(vib.frequencies[vib.frequencies > 100])
    # water's three modes (experiment: 1595, 3657, 3756 cm-1; harmonic CCSD(T) ~1650, 3830, 3940)
    assert len(real) == 3
    assert 1550 < real[0] < 1750 and 3700 < real[1] < 4000 and 3800 < real[2] < 4100
    samples = ase_al.samplers.wigner(eq, vib, 12, temperature=300, seed=0)
    # ground-state dynamics: velocity Verlet conserves the AIQM2 total energy
    from ase import units
    from ase.md.verlet import VelocityVerlet

    moving = samples[0].copy()
    moving.calc = calc
    totals = []
    VelocityVerlet(moving, 0.25 * units.fs).run(40)
    dyn = VelocityVerlet(moving, 0.25 * units.fs)
    dyn.attach(lambda: totals.append(moving.get_total_energy()))
    dyn.run(40)
    assert np.ptp(totals) < 5e-3  # eV over 10 fs
    # the learner takes it as its reference, by name or as a calculator it ships to workers
    # (both checked in the constructor, before any work)
    for reference in ("AIQM2", calc):
        learner = ase_al.ActiveLearner(eq, reference, workdir=tmp_path / "al")
        assert learner.reference is reference
    from ase_al.executors import default_executor

    labelled = label(samples, "AIQM2", executor=default_executor(), progress=False).labelled
    for atoms in labelled[:3]:
        probe = atoms.copy()
        probe.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(probe.get_potential_energy(), abs=1e-8)
    # Δ-learning a (here made-up, smooth) correction on top of AIQM2: the composite is the sum
    targets = []
    for atoms in labelled:
        shifted = atoms.copy()
        shifted.calc = None
        e = atoms.get_potential_energy() + 0.5 * np.sum((atoms.positions - eq.positions) ** 2)
        f = atoms.get_forces() - 1.0 * (atoms.positions - eq.positions)
        from ase.calculators.singlepoint import SinglePointCalculator

        shifted.calc = SinglePointCalculator(shifted, energy=e, forces=f)
        targets.append(shifted)
    composite = Composite(baseline="AIQM2", correction="KREG", n_corrections=2, seed=0)
    composite.train(targets[:10], forces=True, progress=False)
    test = targets[10].copy()
    test.calc = composite
    parts = composite.parts(test)
    expected = parts["baseline"][0] + np.mean([e for e, _ in parts["corrections"]])
    assert test.get_potential_energy() == pytest.approx(expected, abs=1e-10)
    assert test.get_potential_energy() == pytest.approx(
        targets[10].get_potential_energy(), abs=0.02
    )
