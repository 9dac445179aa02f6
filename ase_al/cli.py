"""``ase-al INPUT_FILE``: MLatom-style input files on top of the Python API.

An input file holds one keyword or ``key=value`` per line (several per line are fine),
``#`` starts a comment, values in quotes may span lines (``xyzfile='2\\n\\nH 0 0 0\\n...'`` or
the literal lines), keywords are case-insensitive. One keyword names the task (``AL``,
``crossSection``, ``geomopt``, ``TS``, ``freq``, ``MD``, ``IR``, ``NAMD``), a bare method name
(``B3LYP/6-31G*``, ``GFN2-xTB``) or ``method=``/``reference_method=`` the method, and
``xyzfile=`` the molecule (a file name or the XYZ text itself).

    ase-al --help            the tasks
    ase-al AL --help         one task's options and defaults
    ase-al input.inp         run; logs to the task's log file and the terminal
    ase-al input.inp key=value ...
                             the same with options added or overridden (the command
                             line wins over the file), e.g. a quick trial run of a job

Bad input exits with code 2 and one line saying what is wrong.
"""

# Longer than most modules (the docstring above is the --help text): one table of tasks and
# options, the parser and one short runner per task, kept together so that a task and its
# options are read side by side.

from __future__ import annotations

import difflib
import io
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ase_al.active_learning.settings import InitialData, Sampling, Selection, Uncertainty

log = logging.getLogger("ase_al")


class InputFileError(ValueError):
    """A problem with the input file; the CLI prints it on one line and exits with 2."""


def __getattr__(name):
    if name == "InputError":  # the old name, which shadowed ASE's own InputError
        import warnings

        warnings.warn(
            "ase_al.cli.InputError is now InputFileError; the old name goes in the next release",
            FutureWarning,
            stacklevel=2,
        )
        return InputFileError
    raise AttributeError(name)


# -- the tasks and their options --------------------------------------------------------


def _lib(owner, name: str):
    """The default of the option object ``owner``'s field ``name``: the AL task's defaults are
    read from the library, so the CLI and Python cannot drift."""
    import dataclasses

    return next(f.default for f in dataclasses.fields(owner) if f.name == name)


@dataclass
class Option:
    default: object
    help: str
    kind: type = str


@dataclass
class Task:
    name: str
    help: str
    options: dict[str, Option] = field(default_factory=dict)
    needs_method: bool = True
    aliases: tuple[str, ...] = ()


COMMON = {
    "xyzfile": Option(None, "molecule: an XYZ file name or the XYZ text in quotes"),
    "method": Option(None, "method name, e.g. GFN2-xTB or B3LYP/6-31G* (or give it bare)"),
    "nthreads": Option(None, "threads for the method (PySCF)", int),
}

TASKS = {
    t.name.lower(): t
    for t in [
        Task(
            "geomopt",
            "geometry optimisation (ase.optimize.BFGS): optimized.xyz, geomopt.traj",
            {
                "fmax": Option(0.001, "force convergence threshold, eV/Å", float),
                "maxsteps": Option(1000, "maximum optimisation steps", int),
            },
        ),
        Task(
            "TS",
            "transition state (Sella saddle-point search, one imaginary mode checked): "
            "ts.xyz, ts.traj, freq.dat; with irc=True also the minima on both sides",
            {
                "fmax": Option(0.001, "force convergence threshold, eV/Å", float),
                "maxsteps": Option(500, "maximum Sella steps", int),
                "irc": Option(False, "descend to both minima: backward.xyz, forward.xyz", bool),
            },
        ),
        Task(
            "freq",
            "harmonic frequencies, IR intensities, thermochemistry: freq.dat, thermo.json",
            {
                "temperature": Option(298.15, "K, for thermochemistry", float),
                "symmetrynumber": Option(1, "rotational symmetry number", int),
                "optimize": Option(False, "optimise the geometry first", bool),
            },
        ),
        Task(
            "IR",
            "IR spectrum: harmonic (ir.dat, ir.png) or from MD dipoles (ir_md=True: ir_md.dat)",
            {
                "fwhm": Option(20.0, "band width of the harmonic spectrum, cm-1", float),
                "dipole_model": Option(
                    None, "a trained KREGDipole file: dipoles beside an energy model (method)"
                ),
                "optimize": Option(True, "optimise the geometry first", bool),
                "ir_md": Option(False, "spectrum from the dipoles along NVE MD instead", bool),
                "temperature": Option(300.0, "K, Wigner initial conditions of the MD", float),
                "time_step": Option(0.5, "fs, MD time step", float),
                "trun": Option(2000.0, "fs, MD length", float),
            },
        ),
        Task(
            "MD",
            "NVE molecular dynamics from a Wigner sample (ase VelocityVerlet): md.traj, md.log",
            {
                "time_step": Option(0.5, "fs", float),
                "trun": Option(100.0, "fs, length of the trajectory", float),
                "temperature": Option(300.0, "K, Wigner initial conditions", float),
                "seed": Option(0, "random seed of the initial conditions", int),
            },
        ),
        Task(
            "AL",
            "active learning of an ML potential (ActiveLearner): workdir/labelled.db, models",
            {
                "ml_model": Option("KREG", "KREG, ANI or MACE"),
                "max_epochs": Option(None, "training epochs of ANI/MACE models", int),
                "ml_model_kwargs": Option(
                    None, "the model's settings as a dictionary, e.g. {'hidden': [64, 64]}", dict
                ),
                "device": Option(None, "cpu, cuda or auto, for ANI/MACE models", str),
                "uq": Option(
                    _lib(Uncertainty, "kind"),
                    "uncertainty: physics-informed, committee, variance, distance",
                ),
                "selection": Option(
                    _lib(Selection, "method"), "which uncertain points to label: random, farthest"
                ),
                "optfreq": Option(
                    None, "method for the equilibrium and its frequencies (default: the reference)"
                ),
                "working_directory": Option("al", "where everything is written"),
                "temperature": Option(_lib(Sampling, "temperature"), "K", float),
                "init_batch": Option(_lib(InitialData, "batch"), "initial-data batch size", int),
                "max_init_points": Option(
                    _lib(InitialData, "max_points"), "upper bound on the initial data", int
                ),
                "init_rmse": Option(
                    _lib(InitialData, "rmse"),
                    "eV; initial data stop at this CV RMSE (default: target_error)",
                    float,
                ),
                "target_error": Option(
                    _lib(Uncertainty, "target_error"),
                    "eV; the energy error that matters (default 0.1 kcal/mol)",
                    float,
                ),
                "initial_data": Option(
                    None,
                    "initial data file: ASE db, extxyz, traj or MLatom JSON "
                    "(init_cond_db.json in the AL folder is read automatically)",
                ),
                "new_points": Option(
                    _lib(Selection, "new_points"), "at most this many labels per iteration", int
                ),
                "min_new_points": Option(
                    _lib(Selection, "min_new_points"),
                    "converged below this many uncertain points",
                    int,
                ),
                "fill_new_points": Option(
                    _lib(Selection, "fill"),
                    "sample on until new_points uncertain points (MLatom's way)",
                    bool,
                ),
                "max_iterations": Option(_lib(Selection, "max_iterations"), "", int),
                "uq_threshold": Option(
                    _lib(Uncertainty, "threshold"), "eV; default median + 3 MAD", float
                ),
                "sampler": Option("batch_md", "batch_md, md or wigner"),
                "number_of_trajectories": Option(
                    _lib(Sampling, "n_trajectories"), "sampling trajectories", int
                ),
                # batch_md's defaults (a test keeps them equal; importing it here would load
                # the samplers for every CLI call)
                "maximum_propagation_time": Option(1000.0, "fs", float),
                "time_step": Option(0.5, "fs", float),
                "seed": Option(0, "", int),
            },
        ),
        Task(
            "crossSection",
            "UV/vis cross section by ML-NEA: workdir/cross-section/*.dat and plot.png",
            {
                "nexcitations": Option(3, "excited states", int),
                "nqmpoints": Option(
                    0, "exactly this many QC points, no iteration (0: iterate, MLatom's)", int
                ),
                "nmaxpoints": Option(10000, "upper bound on QC points of the iteration", int),
                "mlpoints": Option(50000, "ensemble size predicted by ML", int),
                "deltaqcnea": Option(0.05, "QC-NEA broadening, eV", float),
                "deltamlnea": Option(0.01, "ML-NEA broadening, eV (MLatom's fixed 0.01)", float),
                "gridstep": Option(0.002, "eV between spectrum points", float),
                "deltaspc": Option(0.3, "single-point convolution broadening, eV", float),
                "plotqcnea": Option(False, "overlay the QC-NEA spectrum", bool),
                "plotqcspc": Option(False, "overlay the SPC spectrum", bool),
                "temperature": Option(0.0, "K, Wigner ensemble", float),
                "working_directory": Option("mlnea", ""),
                "seed": Option(0, "", int),
            },
            aliases=("cross-section", "cross_section"),
        ),
        Task(
            "NAMD",
            "surface hopping (LZBL or FSSH) ensemble: populations.dat, populations.png, "
            "trajectories/; method may be a trained MultiState folder",
            {
                "nstates": Option(3, "electronic states including the ground state", int),
                "initial_state": Option(None, "state to start in (default: the highest)", int),
                "ntraj": Option(10, "trajectories", int),
                "number_of_trajectories": Option(None, "MLatom's name of ntraj", int),
                "time_step": Option(0.25, "fs", float),
                "trun": Option(50.0, "fs", float),
                "maximum_propagation_time": Option(None, "MLatom's name of trun, fs", float),
                "hopping_algorithm": Option(
                    "LZBL", "LZBL, or FSSH (needs nonadiabatic couplings)", str
                ),
                "temperature": Option(0.0, "K, Wigner initial conditions", float),
                "prevent_back_hop": Option(False, "forbid upward hops", bool),
                "parallel": Option(True, "run trajectories in parallel worker processes", bool),
                "working_directory": Option("surface_hopping", ""),
                "seed": Option(0, "", int),
            },
            aliases=("surface_hopping", "surfacehopping"),
        ),
    ]
}
ALIASES = {alias.lower(): key for key, task in TASKS.items() for alias in task.aliases}
KEY_ALIASES = {
    "reference_method": "method",
    "mlmodelin": "method",
    "ml_model_type": "ml_model",
    "workdir": "working_directory",
}


# -- parsing ----------------------------------------------------------------------------


def tokenize(text: str) -> list[tuple[str, str | None]]:
    """``[(key, value or None), ...]`` from an input file's text."""
    tokens, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] not in "=#":
            i += 1
        key = text[start:i]
        if i < n and text[i] == "=":
            i += 1
            if i < n and text[i] in "'\"":
                quote = text[i]
                end = text.find(quote, i + 1)
                if end < 0:
                    raise InputFileError(f"the value of {key!r} opens a quote that is never closed")
                value = text[i + 1 : end].replace("\\n", "\n")
                i = end + 1
            else:
                start = i
                while i < n and not text[i].isspace() and text[i] != "#":
                    i += 1
                value = text[start:i]
            if not key:
                raise InputFileError(f"'={value}' has no keyword before it")
            tokens.append((key, value))
        else:
            tokens.append((key, None))
    return tokens


def _is_method(word: str) -> bool:
    from ase_al.calculators import methods

    if "/" not in word and word.lower() not in {
        "gfn2-xtb",
        "gfn1-xtb",
        "ani-1x",
        "ani-2x",
        "ani-1ccx",
        "aiqm-like",
    }:
        return False
    try:
        methods(word)
    except FileNotFoundError:
        return True  # a known name whose model file is missing: the task will say so
    except (ValueError, ImportError):
        return "/" in word
    return True


def _convert(key: str, raw, option: Option):
    if option.kind is bool:
        if raw is None:
            return True
        lowered = str(raw).lower()
        if lowered in ("1", "true", "yes", "on", "t"):
            return True
        if lowered in ("0", "false", "no", "off", "f"):
            return False
        raise InputFileError(f"{key}={raw}: expected true or false")
    if raw is None:
        raise InputFileError(f"{key} needs a value ({key}=...)")
    if option.kind is dict:
        import ast

        try:
            value = ast.literal_eval(str(raw))
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, dict):
            raise InputFileError(
                f"{key}={raw}: expected a dictionary such as {{'max_epochs': 100}}"
            ) from None
        return value
    try:
        return option.kind(raw)
    except ValueError:
        raise InputFileError(f"{key}={raw}: expected {option.kind.__name__}") from None


def parse(text: str) -> tuple[Task, dict]:
    """The task and its options (defaults filled in) from an input file's text."""
    tokens = tokenize(text)
    task_names = [
        k for k, v in tokens if v is None and (k.lower() in TASKS or k.lower() in ALIASES)
    ]
    if not task_names:
        raise InputFileError(
            f"no task keyword: give one of {', '.join(t.name for t in TASKS.values())}"
        )
    if len(task_names) > 1:
        raise InputFileError(f"several task keywords: {', '.join(task_names)}")
    task = TASKS[ALIASES.get(task_names[0].lower(), task_names[0].lower())]
    known = {**COMMON, **task.options}
    lowered = {k.lower(): k for k in known}
    values: dict = {}
    for key, raw in tokens:
        if raw is None and key == task_names[0]:
            continue
        if raw is None and "method" not in values and _is_method(key):
            values["method"] = key
            continue
        name = KEY_ALIASES.get(key.lower(), key.lower())
        if name not in lowered:
            suggestion = difflib.get_close_matches(name, list(lowered) + list(KEY_ALIASES), 1)
            hint = (
                f"; did you mean {lowered.get(suggestion[0], suggestion[0])}?" if suggestion else ""
            )
            raise InputFileError(f"unknown keyword {key!r} for task {task.name}{hint}")
        option_name = lowered[name]
        values[option_name] = _convert(key, raw, known[option_name])
    precomputed = task.name == "crossSection" and mlatom_nea_files(Path.cwd()) is not None
    if precomputed and not values.get("xyzfile"):
        values["xyzfile"] = "eq.xyz"  # MLatom's layout: the equilibrium beside the data
    if task.needs_method and not values.get("method") and not precomputed:
        raise InputFileError(
            f"task {task.name} needs a method (e.g. a line GFN2-xTB or B3LYP/6-31G*, or method=...)"
            + (
                ", or MLatom's pre-computed files in this folder (eq.xyz, xyz.dat, E1.dat ..., "
                "f1.dat ...)"
                if task.name == "crossSection"
                else ""
            )
        )
    if not values.get("xyzfile"):
        raise InputFileError(f"task {task.name} needs the molecule: xyzfile=FILE or xyzfile='...'")
    options = {name: option.default for name, option in known.items()}
    options.update(values)
    return task, options


def read_molecule(value: str):
    """Atoms from an XYZ file name or from XYZ text."""
    from ase.io import read

    path = Path(value)
    is_file = "\n" not in value and path.is_file()
    if not is_file and "\n" not in value.strip():
        raise InputFileError(f"xyzfile {value!r}: no such file")
    text = path.read_text() if is_file else value.strip("\n") + "\n"
    where = str(path) if is_file else "the inline XYZ"
    lines = text.splitlines()
    try:
        count = int(lines[0].split()[0])
    except (IndexError, ValueError):
        raise InputFileError(f"{where}: the first line must be the number of atoms") from None
    atom_lines = [line for line in lines[2:] if line.strip()]
    if len(atom_lines) < count or len(lines) < 2:
        raise InputFileError(
            f"{where} says {count} atoms but has {len(atom_lines)} atom line(s) after its "
            "comment line"
        )
    try:
        source = str(path) if is_file else io.StringIO(text)
        atoms = read(source, format="xyz")
    except Exception as err:
        where = str(path) if is_file else "the inline XYZ"
        raise InputFileError(f"malformed XYZ in {where}: {err}") from None
    if not np.all(np.isfinite(atoms.positions)):
        raise InputFileError("the molecule's coordinates contain NaN or infinite values")
    return atoms


# -- running ----------------------------------------------------------------------------


def is_model_path(method) -> bool:
    """A method given as the path of a saved model (MLatom's ``MLmodelIn=``)."""
    return isinstance(method, str) and "\n" not in method and Path(method).exists()


def _calculator(options, **kwargs):
    from ase_al.calculators import methods

    if is_model_path(options["method"]):
        from ase_al.calculators.base import load_saved_model

        # loaded once, when the input was checked (main); loaded here for direct callers
        if "_model" in options:
            return options["_model"]
        return load_saved_model(options["method"])
    if options.get("nthreads") and "/" in options["method"]:
        kwargs.setdefault("threads", options["nthreads"])
    return methods(options["method"], **kwargs)


def run_geomopt(atoms, o):
    from ase.io import write

    from ase_al.simulations import optimize_geometry

    eq = optimize_geometry(
        atoms, _calculator(o), fmax=o["fmax"], steps=o["maxsteps"], trajectory="geomopt.traj"
    )
    write("optimized.xyz", eq)
    log.info("optimised energy %.8f eV; optimized.xyz, geomopt.traj", eq.get_potential_energy())


def run_ts(atoms, o):
    from ase.io import write

    from ase_al.reactions import descend_from_saddle, find_transition_state

    calc = _calculator(o)
    saddle, vib = find_transition_state(
        atoms, calc, fmax=o["fmax"], steps=o["maxsteps"], trajectory="ts.traj"
    )
    write("ts.xyz", saddle)
    _write_freq(vib)
    log.info(
        "transition state: energy %.8f eV, imaginary frequency %.1f cm-1; ts.xyz, ts.traj, "
        "freq.dat",
        saddle.get_potential_energy(),
        saddle.info["imaginary_frequency"],
    )
    if o["irc"]:
        backward, forward = descend_from_saddle(saddle, vib, calc)
        write("backward.xyz", backward)
        write("forward.xyz", forward)
        log.info(
            "minima: backward %.8f eV, forward %.8f eV; backward.xyz, forward.xyz",
            backward.get_potential_energy(),
            forward.get_potential_energy(),
        )


def _frequencies(atoms, calc, optimize):
    from ase_al.simulations import freq, optimize_geometry

    if optimize:
        atoms = optimize_geometry(atoms, calc)
    return atoms, freq(atoms, calc)


def _write_freq(vib) -> np.ndarray:
    """freq.dat: wavenumbers (cm-1) and IR intensities (km/mol; NaN without dipoles)."""
    intensities = vib.ir_intensities
    if intensities is None:
        intensities = np.full(len(vib.frequencies), np.nan)
    np.savetxt(
        "freq.dat",
        np.column_stack([vib.frequencies, intensities]),
        header="wavenumber/cm-1  IR_intensity/(km/mol)",
        fmt="%.3f %.5f",
    )
    return intensities


def run_freq(atoms, o):
    import json

    eq, vib = _frequencies(atoms, _calculator(o), o["optimize"])
    intensities = _write_freq(vib)
    thermo = vib.thermochemistry(o["temperature"], symmetrynumber=o["symmetrynumber"])
    numbers = {k: float(v) for k, v in thermo.items() if k != "thermo"}
    Path("thermo.json").write_text(json.dumps(numbers, indent=1))
    for nu, ir in zip(vib.frequencies, intensities, strict=True):
        log.info("%10.1f cm-1  %10.3f km/mol", nu, ir)


def run_ir(atoms, o):
    from ase_al.spectra.ir import harmonic_ir, ir_from_dipoles, plot_spectrum, write_spectrum

    calc = _calculator(o)
    if o["dipole_model"]:
        from ase_al.calculators.base import load_saved_model
        from ase_al.calculators.dipole import KREGDipole, WithDipole

        dipoles = load_saved_model(o["dipole_model"])
        if not isinstance(dipoles, KREGDipole):
            raise InputFileError(f"dipole_model={o['dipole_model']} is not a KREGDipole file")
        calc = WithDipole(calc, dipoles)
    eq, vib = _frequencies(atoms, calc, o["optimize"])
    _write_freq(vib)
    if not o["ir_md"]:
        grid, spectrum = harmonic_ir(vib, fwhm=o["fwhm"])
        write_spectrum("ir.dat", grid, spectrum, "wavenumber/cm-1  absorbance/(km/mol/cm-1)")
        plot_spectrum(
            "ir.png",
            grid,
            spectrum,
            "absorbance / (km/mol/cm$^{-1}$)",
            f"{o['method']} harmonic IR",
        )
        log.info("harmonic IR: ir.dat, ir.png, freq.dat")
        return
    frames = _md(eq, vib, o, seed=0)
    dipoles = np.array([f.get_dipole_moment() for f in frames])
    grid, spectrum = ir_from_dipoles(dipoles, o["time_step"])
    write_spectrum("ir_md.dat", grid, spectrum, "wavenumber/cm-1  intensity/arb.")
    plot_spectrum(
        "ir_md.png", grid, spectrum, "intensity / arb. units", f"{o['method']} IR from MD dipoles"
    )
    log.info("IR from MD: ir_md.dat, ir_md.png, md.traj")


def _md(eq, vib, o, seed):
    from ase import units
    from ase.io import read
    from ase.md.verlet import VelocityVerlet

    from ase_al.samplers import wigner

    atoms = wigner(eq, vib, 1, o["temperature"], seed=seed)[0]
    atoms.calc = _calculator(o)
    steps = int(round(o["trun"] / o["time_step"]))
    with VelocityVerlet(
        atoms, o["time_step"] * units.fs, trajectory="md.traj", logfile="md.log"
    ) as dynamics:
        dynamics.run(steps)
    return read("md.traj", ":")


def run_md(atoms, o):
    eq, vib = _frequencies(atoms, _calculator(o), True)
    frames = _md(eq, vib, o, seed=o["seed"])
    log.info("MD: %d frames in md.traj, md.log", len(frames))


def run_al(atoms, o):
    from ase_al.active_learning import (
        ActiveLearner,
        Equilibrium,
        InitialData,
        Sampling,
        Selection,
        Uncertainty,
    )
    from ase_al.calculators import model_class

    settings = dict(o["ml_model_kwargs"] or {})
    settings.update({k: o[k] for k in ("max_epochs", "device") if o[k] is not None})
    try:
        model = model_class(o["ml_model"])(**settings) if settings else o["ml_model"]
    except TypeError as err:  # an unknown setting: one line naming it
        raise InputFileError(f"ml_model_kwargs: {err}") from None
    ActiveLearner(
        atoms,
        o["method"],
        model=model,
        equilibrium=Equilibrium(method=o["optfreq"]),
        workdir=o["working_directory"],
        initial_data=InitialData(
            batch=o["init_batch"],
            max_points=o["max_init_points"],
            rmse=o["init_rmse"],
            structures=o["initial_data"],
        ),
        sampling=Sampling(
            sampler=o["sampler"],
            n_trajectories=o["number_of_trajectories"],
            temperature=o["temperature"],
            options={"max_time_fs": o["maximum_propagation_time"], "time_step_fs": o["time_step"]},
        ),
        selection=Selection(
            new_points=o["new_points"],
            min_new_points=o["min_new_points"],
            fill=o["fill_new_points"],
            max_iterations=o["max_iterations"],
            method=o["selection"],
        ),
        uncertainty=Uncertainty(
            kind=o["uq"], threshold=o["uq_threshold"], target_error=o["target_error"]
        ),
        seed=o["seed"],
    ).run()


def mlatom_nea_files(folder: Path):
    """MLatom's ML-NEA layout in ``folder``, if it is there: ``eq.xyz`` (equilibrium),
    ``xyz.dat`` (the ensemble, multi-XYZ) and ``E1.dat``, ``f1.dat``, ... (excitation energies
    in eV and oscillator strengths of the first points, one per line, in the order of
    ``xyz.dat``). Returns {"eq", "ensemble", "energies": [paths], "strengths": [paths]} or None."""
    eq, ensemble = folder / "eq.xyz", folder / "xyz.dat"
    energies = sorted(folder.glob("E[0-9]*.dat"), key=lambda p: int(p.stem[1:]))
    strengths = sorted(folder.glob("f[0-9]*.dat"), key=lambda p: int(p.stem[1:]))
    if not (eq.is_file() and ensemble.is_file() and energies):
        return None
    return {"eq": eq, "ensemble": ensemble, "energies": energies, "strengths": strengths}


def _read_precomputed(files: dict, n_excitations: int):
    """The ensemble (list of Atoms) and the QC arrays (N_qc, n_excitations) of MLatom's layout;
    one-line errors for what does not fit."""
    from ase.io import read

    if len(files["energies"]) < n_excitations or len(files["strengths"]) < n_excitations:
        raise InputFileError(
            f"Nexcitations={n_excitations} needs E1.dat ... E{n_excitations}.dat and "
            f"f1.dat ... f{n_excitations}.dat; found {len(files['energies'])} E and "
            f"{len(files['strengths'])} f files"
        )
    columns = []
    for kind in ("energies", "strengths"):
        for path in files[kind][:n_excitations]:
            try:
                columns.append(np.atleast_1d(np.loadtxt(path, dtype=float)))
            except ValueError as err:
                raise InputFileError(f"{path.name}: {err}") from None
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise InputFileError(
            "E*.dat and f*.dat must list the same points (one value per line); lengths "
            f"{sorted(lengths)}"
        )
    energies = np.array(columns[:n_excitations]).T
    strengths = np.array(columns[n_excitations:]).T
    try:
        ensemble = read(files["ensemble"], ":", format="xyz")
    except Exception as err:
        raise InputFileError(f"xyz.dat: {err}") from None
    if len(ensemble) < len(energies):
        raise InputFileError(
            f"xyz.dat has {len(ensemble)} geometries, fewer than the {len(energies)} QC points"
        )
    return ensemble, energies, strengths


def run_cross_section(atoms, o):
    from ase_al.spectra import MLNEA

    files = mlatom_nea_files(Path.cwd())
    data = {}
    if files is not None and not o.get("method"):
        ensemble, energies, strengths = _read_precomputed(files, o["nexcitations"])
        log.info(
            "pre-computed data: %d geometries in xyz.dat, %d QC points",
            len(ensemble),
            len(energies),
        )
        data = dict(
            ensemble=ensemble, qc_excitation_energies=energies, qc_oscillator_strengths=strengths
        )
        # the ensemble's first geometry is the equilibrium (as in MLatom's Newton-X
        # ensembles): its QC data give the SPC spectrum
        first = ensemble[0]
        if len(first) == len(atoms) and np.allclose(first.positions, atoms.positions, atol=1e-4):
            data["equilibrium_excitations"] = (energies[0], strengths[0])
            log.info("SPC from the QC data of xyz.dat's first geometry, which is eq.xyz")
        else:
            log.info("no SPC: xyz.dat's first geometry is not eq.xyz, and no method is given")
    result = MLNEA(
        atoms,
        reference=o["method"] or None,
        **data,
        n_excitations=o["nexcitations"],
        ensemble_size=o["mlpoints"],
        # MLatom: nQMpoints > 0 is an exact count of QC points (no rRMSE iteration)
        max_points=o["nqmpoints"] or o["nmaxpoints"],
        **({"step": o["nqmpoints"]} if o["nqmpoints"] else {}),
        delta=o["deltamlnea"],
        qc_delta=o["deltaqcnea"],
        grid_step=o["gridstep"],
        spc_delta=o["deltaspc"],
        temperature=o["temperature"],
        workdir=o["working_directory"],
        seed=o["seed"],
        plot_qcnea=o["plotqcnea"],
        plot_spc=o["plotqcspc"],
    ).run()
    log.info("ML-NEA: %d QC points; %s", result["n_qc"], result["stop_reason"])


def run_namd(atoms, o):
    from ase_al.dynamics import run_ensemble
    from ase_al.labelling import SerialExecutor
    from ase_al.samplers import wigner

    algorithm = o["hopping_algorithm"].upper()
    if algorithm not in ("LZBL", "FSSH"):
        raise ValueError(f"hopping_algorithm must be LZBL or FSSH, got {o['hopping_algorithm']!r}")
    ntraj = o["number_of_trajectories"] or o["ntraj"]
    trun = o["maximum_propagation_time"] or o["trun"]
    ground = _calculator(o)
    if "nstates" in ground.parameters:  # the excited-state method's own ground state
        ground.set(nstates=0)
    elif "current_state" in ground.parameters:  # a trained multistate model: its ground state
        ground.set(current_state=0)
    eq, vib = _frequencies(atoms, ground, True)
    starts = wigner(eq, vib, ntraj, o["temperature"], seed=o["seed"])
    initial = o["initial_state"] if o["initial_state"] is not None else o["nstates"] - 1
    result = run_ensemble(
        starts,
        o["method"],
        n_states=o["nstates"],
        initial_state=initial,
        time_step_fs=o["time_step"],
        max_time_fs=trun,
        workdir=o["working_directory"],
        prevent_back_hop=o["prevent_back_hop"],
        algorithm=algorithm,
        seed=o["seed"],
        executor=None if o["parallel"] else SerialExecutor(),
    )
    log.info(
        "surface hopping: %d trajectories, final populations %s",
        result["n_trajectories"],
        np.round(result["populations"][-1], 3).tolist(),
    )


RUNNERS = {
    "geomopt": run_geomopt,
    "ts": run_ts,
    "freq": run_freq,
    "ir": run_ir,
    "md": run_md,
    "al": run_al,
    "crosssection": run_cross_section,
    "namd": run_namd,
}


def task_help(task: Task) -> str:
    lines = [f"{task.name}: {task.help}", "", "options (keyword=value, defaults in brackets):"]
    for name, option in {**COMMON, **task.options}.items():
        lines.append(f"  {name:28s} {option.help} [{option.default}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\ntasks:")
        for task in TASKS.values():
            print(f"  {task.name:14s} {task.help}")
        return 0 if argv else 2
    first = argv[0].lower()
    if len(argv) > 1 and argv[1] in ("-h", "--help"):
        key = ALIASES.get(first, first)
        if key not in TASKS:
            print(f"ase-al: unknown task {argv[0]!r}", file=sys.stderr)
            return 2
        print(task_help(TASKS[key]))
        return 0
    path = Path(argv[0])
    try:
        if not path.is_file():
            raise InputFileError(f"input file {path} not found")
        # options after the file name are read as if they were its last lines
        task, options = parse(path.read_text() + "\n" + "\n".join(argv[1:]))
        atoms = read_molecule(options["xyzfile"])
        if options.get("method"):
            from ase_al.calculators import methods

            try:
                if is_model_path(options["method"]):
                    from ase_al.calculators.base import load_saved_model

                    # a model that does not load fails now; the task uses this one
                    options["_model"] = load_saved_model(options["method"])
                else:
                    methods(options["method"])
            except (ValueError, FileNotFoundError) as err:
                raise InputFileError(str(err).splitlines()[0]) from None
    except InputFileError as err:
        print(f"ase-al: {path}: {err}", file=sys.stderr)
        return 2
    _setup_logging(f"{task.name.lower()}.log")
    shown = {k: v for k, v in options.items() if k != "xyzfile" and not k.startswith("_")}
    log.info("ase-al %s: %s", task.name, shown)
    try:
        RUNNERS[task.name.lower()](atoms, options)
    except (ValueError, TypeError) as err:
        # bad settings that the task's objects refuse (checked before their work starts): one
        # line for the user, the traceback in the task's log file
        import traceback

        with open(f"{task.name.lower()}.log", "a") as handle:
            handle.write(traceback.format_exc())
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"ase-al: {path}: {message}", file=sys.stderr)
        return 2
    return 0


def _setup_logging(path: str) -> None:
    logger = logging.getLogger("ase_al")
    logger.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for handler in (logging.FileHandler(path), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(formatter)
        logger.addHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
