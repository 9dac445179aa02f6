"""The ``ase-al INPUT`` command line: input parsing, tasks, bad input, and IR spectra."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read, write

from ase_al.cli import InputFileError, main, parse, read_molecule, tokenize

WATER = """3

O 0.0 0.0 0.119
H 0.0 0.763 -0.477
H 0.0 -0.763 -0.477"""


def run_cli(tmp_path, text, *extra):
    (tmp_path / "job.inp").write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "ase_al.cli", "job.inp", *extra],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def test_tokenizer_handles_comments_quotes_and_multiline_values():
    text = f"""geomopt   # a task
GFN2-xTB
fmax=0.01 maxsteps=50  # two on a line
xyzfile='{WATER}'
"""
    tokens = tokenize(text)
    assert tokens[0] == ("geomopt", None) and tokens[1] == ("GFN2-xTB", None)
    assert ("fmax", "0.01") in tokens and ("maxsteps", "50") in tokens
    assert dict(tokens)["xyzfile"].strip().startswith("3")
    inline = dict(tokenize(r"xyzfile='2\n\nH 0 0 0\nH 0 0 0.74'"))["xyzfile"]
    atoms = read_molecule(inline)
    assert atoms.get_chemical_formula() == "H2" and atoms.get_distance(0, 1) == pytest.approx(0.74)


def test_parse_fills_defaults_and_converts():
    task, options = parse(f"AL\nGFN2-xTB\nml_model=KREG new_points=20\nxyzfile='{WATER}'")
    assert task.name == "AL" and options["method"] == "GFN2-xTB"
    assert options["new_points"] == 20 and options["min_new_points"] == 5
    task, options = parse(f"crossSection reference_method=CIS/STO-3G plotQCNEA\nxyzfile='{WATER}'")
    assert options["method"] == "CIS/STO-3G" and options["plotqcnea"] is True


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "geomopt\nGFN2-xTB\nfmaxx=0.1\nxyzfile=w.xyz",
            "unknown keyword 'fmaxx'.*did you mean fmax",
        ),
        ("geomopt\nxyzfile=w.xyz", "needs a method"),
        ("geomopt\nGFN2-xTB", "needs the molecule"),
        ("GFN2-xTB\nxyzfile=w.xyz", "no task keyword"),
        ("geomopt freq\nGFN2-xTB\nxyzfile=w.xyz", "several task keywords"),
        ("geomopt\nGFN2-xTB\nfmax=abc\nxyzfile=w.xyz", "expected float"),
        ("geomopt\nGFN2-xTB\nxyzfile='3\n\nO 0 0", "never closed"),
    ],
)
def test_bad_input_messages(text, message):
    with pytest.raises(InputFileError, match=message):
        parse(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("geomopt\nGFN2-xTB\nfmaxx=0.1\nxyzfile=w.xyz", "did you mean fmax"),
        ("geomopt\nxyzfile=w.xyz", "needs a method"),
        ("geomopt\nB3LIP/6-31G*\nxyzfile=w.xyz", "unknown method"),
        ("geomopt\nGFN2-xTB\nxyzfile='2\n\nH 0 0\nH 0 0 0.7'", "malformed XYZ"),
        ("geomopt\nGFN2-xTB\nxyzfile=missing.xyz", "no such file"),
    ],
)
def test_bad_input_files_exit_with_2_and_one_line(tmp_path, text, message, capsys, monkeypatch):
    """In this process (``main`` is what the ``ase-al`` script calls; the end-to-end runs
    below start the real command)."""
    write(tmp_path / "w.xyz", molecule("H2O"))
    (tmp_path / "job.inp").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["job.inp"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message.split(".*")[0] in lines[0]


def test_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "crossSection" in out and "NAMD" in out
    assert main(["AL", "--help"]) == 0
    out = capsys.readouterr().out
    assert "new_points" in out and "[100]" in out


def test_geomopt_and_freq_tasks(tmp_path):
    result = run_cli(tmp_path, f"geomopt\nGFN2-xTB\nfmax=0.001\nxyzfile='{WATER}'")
    assert result.returncode == 0, result.stderr
    optimized = read(tmp_path / "optimized.xyz")
    assert optimized.get_distance(0, 1) == pytest.approx(0.96, abs=0.02)  # GFN2-xTB O-H
    assert len(read(tmp_path / "geomopt.traj", ":")) > 1
    assert "optimised energy" in (tmp_path / "geomopt.log").read_text()
    result = run_cli(tmp_path, "freq GFN2-xTB optimize\nxyzfile=optimized.xyz")
    assert result.returncode == 0, result.stderr
    table = np.loadtxt(tmp_path / "freq.dat")
    assert table.shape == (3, 2) and 1400 < table[0, 0] < 1700  # H-O-H bend
    assert json.loads((tmp_path / "thermo.json").read_text())["zpe"] > 0.5


def test_harmonic_ir_of_water_matches_frequencies_and_dipole_derivatives(tmp_path):
    """Three bands at the freq frequencies, band areas equal to the intensities that the
    finite-difference dipole derivatives give."""
    import ase_al
    from ase_al.simulations import finite_difference_dipole_derivatives

    result = run_cli(tmp_path, f"IR\nGFN2-xTB\nfwhm=10\nxyzfile='{WATER}'")
    assert result.returncode == 0, result.stderr
    spectrum = np.loadtxt(tmp_path / "ir.dat")
    calc = ase_al.methods("GFN2-xTB")
    eq = ase_al.optimize_geometry(read_molecule(WATER), calc)
    vib = ase_al.freq(eq, calc)
    # intensities from the dipole derivatives computed here, independently of freq()
    derivatives = finite_difference_dipole_derivatives(eq, calc)
    masses = np.repeat(eq.get_masses(), 3)
    modes = vib.mass_weighted_modes / np.sqrt(masses)[None, :]
    from ase_al.simulations import IR_KM_PER_MOL

    intensities = IR_KM_PER_MOL * np.sum((modes @ derivatives) ** 2, axis=1)
    np.testing.assert_allclose(intensities, vib.ir_intensities, rtol=1e-6)
    grid, absorbance = spectrum[:, 0], spectrum[:, 1]
    # the written spectrum is three Lorentzians (FWHM 10 cm-1) at the freq wavenumbers with
    # these areas: rebuilt here from scratch
    half = 5.0
    expected = sum(
        i * half / np.pi / ((grid - nu) ** 2 + half**2)
        for nu, i in zip(vib.frequencies, intensities, strict=True)
    )
    np.testing.assert_allclose(absorbance, expected, rtol=1e-4, atol=1e-6 * expected.max())
    bend = vib.frequencies[0]
    assert abs(grid[np.argmax(np.where(grid < 2500, absorbance, 0))] - bend) <= 1.0
    assert np.trapezoid(absorbance, grid) == pytest.approx(intensities.sum(), rel=0.01)
    assert (tmp_path / "ir.png").stat().st_size > 1000


def test_md_and_ir_from_md_tasks(tmp_path):
    result = run_cli(tmp_path, f"MD GFN2-xTB trun=20 time_step=0.5\nxyzfile='{WATER}'")
    assert result.returncode == 0, result.stderr
    assert len(read(tmp_path / "md.traj", ":")) == 41
    result = run_cli(tmp_path, f"IR GFN2-xTB ir_md trun=400 temperature=300\nxyzfile='{WATER}'")
    assert result.returncode == 0, result.stderr
    grid, intensity = np.loadtxt(tmp_path / "ir_md.dat", unpack=True)
    harmonic = np.loadtxt(tmp_path / "freq.dat")[:, 0]
    # bands of the MD spectrum (local maxima above 5 % of the strongest) lie near the harmonic
    # wavenumbers: within 150 cm-1 (anharmonic red shifts at 300 K plus a resolution of
    # ~1/(200 fs window) ≈ 170 cm-1 full width), and each harmonic band has one
    peaks = [
        grid[k]
        for k in range(1, len(grid) - 1)
        if intensity[k] > 0.05 and intensity[k - 1] <= intensity[k] > intensity[k + 1]
    ]
    assert all(np.min(np.abs(harmonic - p)) < 150 for p in peaks), (peaks, harmonic)
    assert all(np.min(np.abs(np.array(peaks) - nu)) < 150 for nu in harmonic), (peaks, harmonic)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "inputs"


def tree(directory):
    """Relative paths of the files under ``directory``, logs left out."""
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.suffix != ".log"
    )


def test_al_example_input_writes_what_the_python_api_writes(tmp_path):
    """examples/inputs/al_h2.inp, shortened on the command line, and the same run through
    ActiveLearner: the same files, and the same labels (both runs are seeded)."""
    from ase.db import connect

    from ase_al import ActiveLearner

    quick = dict(init_batch=30, max_init_points=60, init_rmse=1e-9, max_iterations=1)
    sampling = dict(number_of_trajectories=10, maximum_propagation_time=50)
    (tmp_path / "cli").mkdir()
    overrides = [f"{k}={v}" for k, v in {**quick, **sampling}.items()]
    result = run_cli(tmp_path / "cli", (EXAMPLES / "al_h2.inp").read_text(), *overrides)
    assert result.returncode == 0, result.stderr
    assert "iteration 1: 60 training points" in (tmp_path / "cli" / "al.log").read_text()

    api = tmp_path / "api" / "al_h2_input"  # the working_directory in the input file
    ActiveLearner(
        read_molecule("2\n\nH 0.0 0.0 0.0\nH 0.0 0.0 0.7"),
        "GFN2-xTB",
        model="KREG",
        workdir=api,
        seed=0,
        sampler_kwargs={"n_trajectories": 10, "max_time_fs": 50},
        **quick,
    ).run()
    cli = tmp_path / "cli" / "al_h2_input"
    assert tree(cli) == tree(api)
    assert "labelled.db" in tree(cli) and "iteration_1/main.npz" in tree(cli)
    rows = [  # rows are written as the workers finish: compare them by uid
        sorted(connect(d / "labelled.db", use_lock_file=False).select(), key=lambda r: r.uid)
        for d in (cli, api)
    ]
    assert [r.uid for r in rows[0]] == [r.uid for r in rows[1]]
    assert len(rows[0]) == len(rows[1]) >= 60
    # the same to round-off: two processes may sum the models' matrix products in another
    # order (thread pools differ after other tests), and MD amplifies last bits to ~1e-11 Å
    np.testing.assert_allclose(
        [r.toatoms().positions for r in rows[0]],
        [r.toatoms().positions for r in rows[1]],
        rtol=0,
        atol=1e-8,
    )
    np.testing.assert_allclose(
        [r.energy for r in rows[0]], [r.energy for r in rows[1]], rtol=0, atol=1e-8
    )


def test_cross_section_example_input(tmp_path):
    """examples/inputs/cross_section_water.inp with a cheap method and few points: the three
    spectra in MLatom's file names and columns, the overlay plot, the iteration log lines."""
    small = ["method=CIS/STO-3G", "Nexcitations=2", "nQMpoints=50", "MLpoints=500"]
    result = run_cli(tmp_path, (EXAMPLES / "cross_section_water.inp").read_text(), *small)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "mlnea" / "cross-section"
    for kind in ("ml-nea", "qc-nea", "spc"):
        table = np.loadtxt(out / f"cross-section_{kind}.dat")
        assert table.shape[1] == 3 and table[:, 2].max() > 0
        # lambda/nm = hc/E: 1239.84 eV nm
        np.testing.assert_allclose(table[:, 0] * table[:, 1], 1239.84, rtol=1e-4)
    assert (out / "plot.png").stat().st_size > 1000
    log_text = (tmp_path / "crosssection.log").read_text()
    # MLatom's nQMpoints: exactly that many QC points, no rRMSE iteration
    assert "ML-NEA iteration 1" in log_text and "ML-NEA iteration 2" not in log_text
    assert "ML-NEA: 50 QC points" in log_text
    # MLatom's grid: 0.002 eV between points
    grid = np.loadtxt(out / "cross-section_ml-nea.dat")[:, 0]
    np.testing.assert_allclose(np.diff(grid), 0.002, atol=1e-9)


def test_namd_task(tmp_path):
    text = (
        "NAMD CIS/STO-3G nstates=3 ntraj=2 trun=2 time_step=0.5 parallel=false\n"
        "xyzfile='3\n\nO 0.0 0.0 0.119\nH 0.0 0.763 -0.477\nH 0.0 -0.763 -0.477'"
    )
    result = run_cli(tmp_path, text)
    assert result.returncode == 0, result.stderr
    pops = np.loadtxt(tmp_path / "surface_hopping" / "populations.dat")
    # the final populations: the fractions of the two trajectories' last states
    folder = tmp_path / "surface_hopping" / "trajectories"
    last = [read(folder / f"traj_{k}.traj", -1).info["state"] for k in range(2)]
    np.testing.assert_allclose(pops[-1, 1:], np.bincount(last, minlength=3) / 2)
    assert len(read(tmp_path / "surface_hopping" / "trajectories" / "traj_0.traj", ":")) == 5


def test_a_wrong_atom_count_and_an_unknown_model_are_one_line_errors(tmp_path, monkeypatch, capsys):
    from ase_al.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.inp").write_text("geomopt GFN2-xTB\nxyzfile='3\n\nH 0 0 0\nH 0 0 0.74\n'\n")
    assert main(["short.inp"]) == 2
    assert "says 3 atoms but has 2 atom line(s)" in capsys.readouterr().err
    (tmp_path / "model.inp").write_text(
        "AL GFN2-xTB ml_model=PhysNet\nxyzfile='2\n\nH 0 0 0\nH 0 0 0.74\n'\n"
    )
    assert main(["model.inp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model type 'PhysNet'" in err
    assert "Traceback" in (tmp_path / "al.log").read_text()  # kept for a bug report
    assert not (tmp_path / "al" / "labelled.db").exists()  # refused before any label


def test_cross_section_on_precomputed_data_in_mlatom_layout(tmp_path, monkeypatch, capsys):
    """MLatom's tutorial folder: eq.xyz, xyz.dat (ensemble), E1.dat/E2.dat and f1.dat/f2.dat of
    the first points, and a five-line input without a method or xyzfile."""
    import ase_al
    from ase_al.cli import main
    from ase_al.spectra.mlnea import reference_excitations

    calc = ase_al.methods("HF/STO-3G")
    from ase.build import molecule

    eq = ase_al.optimize_geometry(molecule("H2O"), calc)
    samples = ase_al.samplers.wigner(eq, ase_al.freq(eq, calc), 120, seed=0)
    samples[0] = eq.copy()  # the ensemble starts with the equilibrium, as Newton-X's do
    data = [reference_excitations("CIS/STO-3G", 2, atoms) for atoms in samples[:100]]
    monkeypatch.chdir(tmp_path)
    eq.write(tmp_path / "eq.xyz")
    from ase.io import write

    write(tmp_path / "xyz.dat", samples, format="xyz")
    for k in range(2):
        np.savetxt(tmp_path / f"E{k + 1}.dat", [de[k] for de, _ in data])
        np.savetxt(tmp_path / f"f{k + 1}.dat", [f[k] for _, f in data])
    (tmp_path / "nea.inp").write_text("cross-section\nNexcitations=2\ndeltaQCNEA=0.2\n")
    assert main(["nea.inp"]) == 0
    log_text = (tmp_path / "crosssection.log").read_text()
    assert "pre-computed data: 120 geometries in xyz.dat, 100 QC points" in log_text
    assert "converged" in log_text.split("ML-NEA:")[-1] or "used up" in log_text
    table = np.loadtxt(tmp_path / "mlnea" / "cross-section" / "cross-section_ml-nea.dat")
    assert table[:, 2].max() > 0
    # the SPC spectrum from the equilibrium's own QC data (the first line of E*.dat, f*.dat)
    from ase_al.spectra import cross_section

    spc = np.loadtxt(tmp_path / "mlnea" / "cross-section" / "cross-section_spc.dat")
    expected = cross_section(*data[0], spc[:, 0], 0.3)  # the file's grid is printed rounded
    np.testing.assert_allclose(spc[:, 2], expected, rtol=1e-3, atol=1e-6 * expected.max())
    assert "SPC from the QC data of xyz.dat's first geometry" in log_text
    # a missing f2.dat is a one-line error naming the files
    (tmp_path / "f2.dat").unlink()
    assert main(["nea.inp"]) == 2
    assert "f1.dat ... f2.dat" in capsys.readouterr().err


WATER_XYZ = "xyzfile='3\n\nO 0.0 0.0 0.119\nH 0.0 0.763 -0.477\nH 0.0 -0.763 -0.477'"


def test_trained_models_as_the_method_and_mlatom_namd_keywords(tmp_path, monkeypatch, capsys):
    """A KREG trained here (a file) drives geomopt; a trained MultiState (a folder) drives
    NAMD with MLatom's keyword names; FSSH without couplings is a one-line error."""
    import ase_al
    from ase_al.calculators import KREG
    from ase_al.calculators.multistate import MultiState, label_multistate
    from ase_al.cli import main
    from ase_al.labelling import SerialExecutor, label

    monkeypatch.chdir(tmp_path)
    calc = ase_al.methods("GFN2-xTB")
    eq = ase_al.optimize_geometry(read(io.StringIO(WATER), format="xyz"), calc)
    samples = ase_al.samplers.wigner(eq, ase_al.freq(eq, calc), 40, temperature=300, seed=1)
    labelled = label(samples, "GFN2-xTB", executor=SerialExecutor(), progress=False).labelled
    KREG(equilibrium=eq).train(labelled, forces=True, progress=False).save(tmp_path / "w.npz")
    (tmp_path / "opt.inp").write_text(f"geomopt MLmodelIn=w.npz\n{WATER_XYZ}\n")
    assert main(["opt.inp"]) == 0
    optimized = read(tmp_path / "optimized.xyz")
    assert optimized.get_distance(0, 1) == pytest.approx(eq.get_distance(0, 1), abs=0.01)
    # the same file in the freq and MD tasks: KREG's frequencies near GFN2-xTB's, and NVE MD
    (tmp_path / "freq.inp").write_text(f"freq MLmodelIn=w.npz\n{WATER_XYZ}\n")
    assert main(["freq.inp"]) == 0
    nu_ref = ase_al.freq(eq, calc).frequencies
    nu_ml = np.loadtxt(tmp_path / "freq.dat", usecols=0)
    np.testing.assert_allclose(np.sort(nu_ml)[-3:], np.sort(nu_ref)[-3:], rtol=0.05)
    (tmp_path / "md.inp").write_text(f"MD MLmodelIn=w.npz trun=5 time_step=0.5\n{WATER_XYZ}\n")
    assert main(["md.inp"]) == 0
    frames = read(tmp_path / "md.traj", ":")
    assert len(frames) == 11
    # IR needs dipoles, which an energy model has not: one line, no traceback ...
    (tmp_path / "ir.inp").write_text(f"IR MLmodelIn=w.npz optimize=false\n{WATER_XYZ}\n")
    assert main(["ir.inp"]) == 2
    assert "no IR intensities (no dipoles from the method)" in capsys.readouterr().err
    # ... and with a dipole model trained on the same structures, GFN2-xTB's IR spectrum
    from ase.calculators.singlepoint import SinglePointCalculator

    from ase_al.calculators.dipole import KREGDipole

    with_dipoles = []
    for atoms in samples:
        atoms = atoms.copy()
        atoms.calc = calc
        e, f, mu = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_dipole_moment()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, dipole=mu)
        with_dipoles.append(atoms)
    KREGDipole().train(with_dipoles).save(tmp_path / "d.npz")
    (tmp_path / "ir.inp").write_text(f"IR MLmodelIn=w.npz dipole_model=d.npz\n{WATER_XYZ}\n")
    assert main(["ir.inp"]) == 0
    reference = ase_al.freq(eq, calc)
    nu_ml, intensity_ml = np.loadtxt(tmp_path / "freq.dat")[-3:].T
    np.testing.assert_allclose(nu_ml, reference.frequencies[-3:], rtol=0.05)
    # the bend carries most of the intensity (measured 128 vs 133 km/mol), the stretches less
    assert intensity_ml[0] == pytest.approx(reference.ir_intensities[-3], rel=0.1)
    assert np.argmax(intensity_ml) == np.argmax(reference.ir_intensities[-3:]) == 0
    assert (tmp_path / "ir.dat").stat().st_size > 0

    cis = ase_al.methods("CIS/STO-3G", n_states=4)
    states = [label_multistate(a, cis, n_states=3) for a in samples[:25]]
    MultiState(model="KREG", n_states=3).train(states).save(tmp_path / "ms")
    text = (
        "NAMD method=ms nstates=3 number_of_trajectories=2 maximum_propagation_time=2 "
        f"time_step=0.5 parallel=false\n{WATER_XYZ}\n"
    )
    (tmp_path / "namd.inp").write_text(text)
    assert main(["namd.inp"]) == 0
    summary = json.loads((tmp_path / "surface_hopping" / "summary.json").read_text())
    assert summary["n_trajectories"] == 2 and summary["max_time_fs"] == 2.0
    assert summary["algorithm"] == "LZBL"
    (tmp_path / "fssh.inp").write_text(text.replace("NAMD", "NAMD hopping_algorithm=FSSH"))
    (tmp_path / "fssh.inp").write_text(
        (tmp_path / "fssh.inp")
        .read_text()
        .replace("parallel=false", "parallel=false working_directory=fssh")
    )
    assert main(["fssh.inp"]) == 2
    assert "FSSH needs nonadiabatic coupling vectors" in capsys.readouterr().err


def test_al_task_takes_model_uncertainty_selection_and_optfreq_settings(
    tmp_path, monkeypatch, capsys
):
    from ase_al import ActiveLearner
    from ase_al.calculators.ani import ANI
    from ase_al.cli import main

    built = []
    monkeypatch.setattr(ActiveLearner, "run", lambda self: built.append(self))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "al.inp").write_text(
        "AL GFN2-xTB ml_model=ANI max_epochs=7 device=cpu uq=committee selection=farthest "
        "fill_new_points=true optfreq=GFN1-xTB\nxyzfile='2\n\nH 0 0 0\nH 0 0 0.74\n'\n"
    )
    assert main(["al.inp"]) == 0
    learner = built[0]
    model = learner.recipe.build(0)
    assert isinstance(model, ANI) and model.training["max_epochs"] == 7
    assert learner.uncertainty.kind == "committee" and learner.selection.method == "farthest"
    assert learner.equilibrium.method == "GFN1-xTB"
    (tmp_path / "bad.inp").write_text(
        "AL GFN2-xTB uq=dropout\nxyzfile='2\n\nH 0 0 0\nH 0 0 0.74\n'\n"
    )
    assert main(["bad.inp"]) == 2
    assert (
        "uncertainty must be 'physics-informed', 'committee', 'variance'" in capsys.readouterr().err
    )


def test_al_task_defaults_are_the_librarys(tmp_path, monkeypatch):
    """An AL input with nothing but the method and molecule builds the learner Python users get
    with no options: the CLI's defaults are the library's (and batch_md's)."""
    import inspect

    from ase_al import ActiveLearner, InitialData, Selection, Uncertainty
    from ase_al.cli import main
    from ase_al.samplers import batch_md

    built = []
    monkeypatch.setattr(ActiveLearner, "run", lambda self: built.append(self))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "al.inp").write_text("AL GFN2-xTB\nxyzfile='2\n\nH 0 0 0\nH 0 0 0.74\n'\n")
    assert main(["al.inp"]) == 0
    learner = built[0]
    assert learner.initial_data == InitialData()
    assert learner.selection == Selection()
    assert learner.uncertainty == Uncertainty()
    defaults = inspect.signature(batch_md).parameters
    assert learner.sampling.options == {
        "max_time_fs": defaults["max_time_fs"].default,
        "time_step_fs": defaults["time_step_fs"].default,
    }
    python = ActiveLearner(
        read(io.StringIO("2\n\nH 0 0 0\nH 0 0 0.74\n"), format="xyz"), "GFN2-xTB"
    )
    assert learner.sampling.n_trajectories == python.sampling.n_trajectories
    assert learner.sampling.temperature == python.sampling.temperature
    assert learner.seed == python.seed


def test_al_task_passes_model_settings_as_a_dictionary(tmp_path, monkeypatch, capsys):
    from ase_al import ActiveLearner
    from ase_al.calculators.ani import ANI
    from ase_al.cli import main

    built = []
    monkeypatch.setattr(ActiveLearner, "run", lambda self: built.append(self))
    monkeypatch.chdir(tmp_path)
    molecule = "xyzfile='2\n\nH 0 0 0\nH 0 0 0.74\n'\n"
    (tmp_path / "al.inp").write_text(
        "AL GFN2-xTB ml_model=ANI ml_model_kwargs=\"{'max_epochs': 3, 'batch_size': 8}\"\n"
        + molecule
    )
    assert main(["al.inp"]) == 0
    model = built[0].recipe.build(0)
    assert isinstance(model, ANI) and model.training["max_epochs"] == 3
    assert model.training["batch_size"] == 8
    for bad, message in (
        ("ml_model_kwargs=\"{'epochz': 3}\"", "ml_model_kwargs: "),
        ("ml_model_kwargs=[3]", "expected a dictionary"),
    ):
        (tmp_path / "bad.inp").write_text(f"AL GFN2-xTB ml_model=ANI {bad}\n" + molecule)
        assert main(["bad.inp"]) == 2
        err = capsys.readouterr().err
        assert message in err and "epochz" in err if "epochz" in bad else message in err
