"""Drop-in use: scripts without a __main__ guard, MLatom's ml.al keywords, options checked
before any reference calculation, calculators that refuse unknown parameters."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule

import ase_al
from ase_al import ActiveLearner, Equilibrium, InitialData, Sampling, Selection, Uncertainty
from ase_al.mlatom_compat import translate
from ase_al.simulations import HarmonicAnalysis

ROOT = Path(__file__).resolve().parents[1]

UNGUARDED = """
import os
import sys
from pathlib import Path

from ase import Atoms

import ase_al
from ase_al.calculators import XTB

out = Path(sys.argv[1])
with open(out / "top_level_runs.txt", "a") as f:  # every execution of this file counts
    f.write(f"{os.getpid()}\\n")


class PidRecordingXTB(XTB):
    # a reference defined in __main__: the workers receive it by value
    def calculate(self, atoms=None, properties=None, system_changes=None):
        (out / "pids").mkdir(exist_ok=True)
        (out / "pids" / str(os.getpid())).touch()
        super().calculate(atoms, properties, system_changes or ["positions"])


h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])
ase_al.ActiveLearner(
    h2,
    reference=PidRecordingXTB(),
    model="KREG",
    workdir=out / "al",
    initial_data=ase_al.InitialData(batch=20, max_points=40),
    uncertainty=ase_al.Uncertainty(threshold=0.001),
    sampling=ase_al.Sampling(n_trajectories=20, options={"max_time_fs": 50.0}),
    progress=False,
).run()
"""


def _run(args, cwd, timeout=400):
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_unguarded_script_runs_once_and_labels_in_workers_with_a_main_defined_reference(
    tmp_path,
):
    script = tmp_path / "script.py"
    script.write_text(UNGUARDED)
    _run([str(script), str(tmp_path)], cwd=tmp_path)
    runs = (tmp_path / "top_level_runs.txt").read_text().split()
    assert len(runs) == 1, f"the script's top level ran {len(runs)} times"
    state = json.loads((tmp_path / "al" / "state.json").read_text())
    assert state["converged"]
    # the main process optimised the geometry with it; the labels came from worker processes
    pids = {int(p.name) for p in (tmp_path / "pids").iterdir()}
    assert pids - {int(runs[0])}, "no reference calculation ran in a worker process"


def test_python_c_session_ships_a_class_defined_at_the_prompt(tmp_path):
    """A notebook or ``python -c`` has no file the workers could import its classes from."""
    code = (
        "import ase_al, numpy as np\n"
        "from ase.build import molecule\n"
        "from ase_al.calculators import XTB\n"
        "from ase_al.labelling import label\n"
        "class Shifted(XTB):\n"
        "    def calculate(self, atoms=None, properties=None, system_changes=None):\n"
        "        super().calculate(atoms, properties, system_changes or ['positions'])\n"
        "        self.results['energy'] += 1.0\n"
        "images = [molecule('H2') for _ in range(3)]\n"
        "for i, a in enumerate(images): a.positions[1, 2] += 0.01 * i; a.info['uid'] = str(i)\n"
        "result = label(images, Shifted(), progress=False)\n"
        "assert not result.failed, result.failed\n"
        "plain = ase_al.methods('GFN2-xTB')\n"
        "for a in result.labelled:\n"
        "    b = a.copy(); b.calc = plain\n"
        "    assert abs(a.get_potential_energy() - b.get_potential_energy() - 1.0) < 1e-9\n"
        "print('ok')\n"
    )
    assert _run(["-c", code], cwd=tmp_path).stdout.strip() == "ok"


def test_mlatom_structured_script_runs_unguarded_with_the_thresholds_it_asked_for(tmp_path):
    """examples/mlatom_style_h2.py: MLatom's tutorial structure, unguarded, GFN2-xTB."""
    example = ROOT / "examples" / "mlatom_style_h2.py"
    out = _run([str(example), str(tmp_path / "al"), "GFN2-xTB"], cwd=tmp_path).stdout
    assert "converged: True" in out
    state = json.loads((tmp_path / "al" / "state.json").read_text())
    settings = state["settings"]
    # uq_threshold 0.00005 Hartree in sampler_kwargs, converted to eV and used every iteration
    assert settings["uq_threshold"] == pytest.approx(0.00005 * units.Hartree, rel=1e-12)
    assert all(
        it["threshold"] == pytest.approx(0.00005 * units.Hartree, rel=1e-12)
        for it in state["iterations"]
    )
    # MD initial conditions at 300 K, initial data at 500 K, in the counts asked for
    assert settings["temperature"] == 300 and settings["init_temperature"] == 500
    assert settings["init_batch"] == 25 and settings["sampler_kwargs"]["n_trajectories"] == 50
    assert settings["max_iterations"] == 10 and settings["min_new_points"] == 5
    assert state["iterations"][0]["n_trajectories"] == 50


def _soft_h2():
    """H2 with a soft spring (about 85 cm⁻¹), so that 300 K and 1500 K Wigner distributions
    differ clearly: <KE> = ħω/4 · coth(ħω / 2kT)."""
    atoms = molecule("H2")
    k = 0.0135  # eV/Å²
    hessian = np.zeros((6, 6))
    block = k * np.array([[1.0, -1.0], [-1.0, 1.0]])
    hessian[np.ix_([2, 5], [2, 5])] = block
    return atoms, HarmonicAnalysis(atoms, hessian)


def test_initial_data_and_initial_conditions_are_sampled_at_their_own_temperatures(tmp_path):
    atoms, vib = _soft_h2()
    hbar_omega = vib.frequencies[0] * units.invcm  # eV
    assert 80 < vib.frequencies[0] < 90
    learner = ActiveLearner(
        atoms,
        "GFN2-xTB",
        equilibrium=Equilibrium(optimize=False, vibrations=vib),
        sampling=Sampling(temperature=300.0),
        initial_data=InitialData(temperature=1500.0),
        workdir=tmp_path,
    )
    for temperature, samples in (
        (300.0, learner._initial_conditions(atoms, vib, 10000)),
        (1500.0, learner._wigner(atoms, vib, 10000, "init", learner.initial_data.temperature)),
    ):
        kinetic = np.mean([a.get_kinetic_energy() for a in samples])
        expected = hbar_omega / 4 / np.tanh(hbar_omega / (2 * units.kB * temperature))
        assert kinetic == pytest.approx(expected, rel=0.05)
    # and al() maps MLatom's two initial_temperature keywords onto them
    options = translate(
        {
            "molecule": atoms,
            "reference_method": "GFN2-xTB",
            "initdata_sampler_kwargs": {"initial_temperature": 1500, "molecule": atoms},
            "sampler_kwargs": {
                "initcond_sampler": "wigner",
                "initcond_sampler_kwargs": {"initial_temperature": 300, "molecule": atoms},
            },
        }
    )
    assert options["temperature"] == 300 and options["init_temperature"] == 1500


def test_mlatom_keywords_are_translated_with_their_units():
    h2 = molecule("H2")
    options = translate(
        {
            "molecule": h2,
            "reference_method": "GFN2-xTB",
            "ml_model": "KREG",
            "ml_models_kwargs": {"sigma": 2.0},
            "sampler": "batch_md",
            "sampler_kwargs": {
                "initcond_sampler_kwargs": {"number_of_initial_conditions": 30, "molecule": h2},
                "maximum_propagation_time": 100.0,
                "time_step": 0.25,
                "uq_threshold": 0.001,
            },
            "initdata_sampler_kwargs": {"number_of_initial_conditions": 40},
            "initial_points_refinement": "one-shot",
            "init_RMSE_threshold": 0.0002,
            "new_points": 7,
            "min_new_points": 3,
            "max_iterations": 4,
            "working_directory": "somewhere",
        }
    )
    assert options["uq_threshold"] == pytest.approx(0.001 * 27.211386, rel=1e-6)
    assert options["init_rmse"] == pytest.approx(0.0002 * 27.211386, rel=1e-6)
    assert options["sampler_kwargs"] == {
        "n_trajectories": 30,
        "max_time_fs": 100.0,
        "time_step_fs": 0.25,
    }
    assert options["model"] == "KREG" and options["model_kwargs"] == {"sigma": 2.0}
    assert options["init_batch"] == 40 and options["max_init_points"] == 40  # one-shot
    assert (options["new_points"], options["min_new_points"], options["max_iterations"]) == (
        7,
        3,
        4,
    )
    assert options["workdir"] == "somewhere"
    # a list of Atoms with momenta as the initial conditions, and a callable
    conditions = [h2.copy() for _ in range(3)]
    options = translate({"molecule": h2, "sampler_kwargs": {"initcond_sampler": conditions}})
    assert options["initial_conditions"] == conditions

    def my_conditions(count):
        return [h2.copy() for _ in range(count)]

    options = translate(
        {
            "molecule": h2,
            "sampler_kwargs": {
                "initcond_sampler": my_conditions,
                "initcond_sampler_kwargs": {"count": 4},
            },
        }
    )
    assert len(options["initial_conditions"](4, 0)) == 4


class _Locked(ase_al.calculators.XTB):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()  # cannot be pickled, by cloudpickle either


def _sampler_without_threshold(model, initial_conditions):
    return []


class _NotTrainable(ase_al.calculators.KREG):
    train = None


def _trained_kreg():
    h2 = molecule("H2")
    images = []
    for d in (0.7, 0.75, 0.8, 0.85):
        atoms = h2.copy()
        atoms.set_distance(0, 1, d)
        atoms.calc = ase_al.methods("GFN2-xTB")
        atoms.get_forces()
        images.append(atoms)
    return ase_al.calculators.KREG().train(images, forces=False)


BAD_NEW_STYLE_OPTIONS = [
    ({"sampling": Sampling(options={"max_time_f": 5})}, TypeError, "did you mean 'max_time_fs'"),
    ({"selection": Selection(new_points=10)}, None, None),
    (
        {"uncertainty": Uncertainty(kind="committee", committee_size=3), "model": "KRR"},
        ValueError,
        "unknown model type",
    ),
    ({"equilibrium": Equilibrium(method="B3LIP/6-31G*")}, ValueError, "unknown method"),
    ({"initial_data": [molecule("H2O")]}, ValueError, "does not match the molecule"),
    ({"sampling": {"n_trajectories": 5}}, TypeError, "sampling must be a Sampling"),
]


@pytest.mark.parametrize("options, error, message", BAD_NEW_STYLE_OPTIONS)
def test_bad_option_objects_fail_in_the_constructor(tmp_path, options, error, message):
    if error is None:  # a good one, for contrast: the constructor accepts it and does nothing
        ActiveLearner(molecule("H2"), "GFN2-xTB", workdir=tmp_path / "al", **options)
    else:
        with pytest.raises(error, match=message):
            ActiveLearner(molecule("H2"), "GFN2-xTB", workdir=tmp_path / "al", **options)
    assert not (tmp_path / "al").exists()


def test_option_objects_check_their_own_values():
    with pytest.raises(TypeError, match="Selection.new_points must be an integer"):
        Selection(new_points=2.5)
    with pytest.raises(ValueError, match="give fill=True"):
        Selection(method="farthest")
    with pytest.raises(ValueError, match="committee_size >= 2"):
        Uncertainty(kind="committee", committee_size=1)
    with pytest.raises(FileNotFoundError, match="no such database"):
        InitialData(structures="missing.db")
    with pytest.raises(TypeError, match="vibrations must be"):
        Equilibrium(vibrations=[1, 2, 3])
    with pytest.raises(ValueError, match="Sampling.freeze_below_cm1 must be >= 0"):
        Sampling(freeze_below_cm1=-1.0)
    with pytest.raises(ValueError, match="frequency_tolerance must be > 0"):
        Sampling(frequency_tolerance=0)
    with pytest.raises(TypeError, match="frequency_tolerance must be a number, got str"):
        Sampling(frequency_tolerance="5%")
    with pytest.raises(ValueError, match="barrier_top_tolerance must be > 0"):
        Sampling(barrier_top_tolerance=0.0)
    with pytest.raises(ValueError, match=r"barrier_top_tolerance must be > 0 .*got -0.1"):
        Sampling(barrier_top_tolerance=-0.1)
    with pytest.raises(ValueError, match="Sampling.temperature must be a number, got nan"):
        Sampling(temperature=float("nan"))
    with pytest.raises(ValueError, match="barrier_top_temperatures needs barrier_top_tolerance"):
        Sampling(barrier_top_temperatures=(300, 600))
    with pytest.raises(ValueError, match="barrier_top_temperatures must be >= "):
        Sampling(barrier_top_tolerance=0.1, barrier_top_temperatures=(300, -600))
    with pytest.raises(TypeError, match=r"a sequence of temperatures in K, e.g. \(300, 600\)"):
        Sampling(barrier_top_tolerance=0.1, barrier_top_temperatures=600)
    with pytest.raises(ValueError, match="barrier_top_temperatures is empty"):
        Sampling(barrier_top_tolerance=0.1, barrier_top_temperatures=[])
    assert Sampling(
        barrier_top_tolerance=0.1, barrier_top_temperatures=[300, 600.0]
    ).barrier_top_temperatures == (300.0, 600.0)
    with pytest.raises(ValueError, match="barrier_top_samples needs barrier_top_tolerance"):
        Sampling(barrier_top_samples=50)
    with pytest.raises(ValueError, match="barrier_top_samples must be >= 2, got 1"):
        Sampling(barrier_top_tolerance=0.1, barrier_top_samples=1)
    with pytest.raises(TypeError, match="barrier_top_samples must be an integer"):
        Sampling(barrier_top_tolerance=0.1, barrier_top_samples=20.5)
    # a mistyped field is named with the nearest one
    with pytest.raises(TypeError, match="Sampling got an unknown keyword 'freeze_below'; did you"):
        Sampling(freeze_below=100.0)
    with pytest.raises(TypeError, match="did you mean 'target_error'"):
        Uncertainty(target=0.01)


BAD_LEARNER_OPTIONS = [
    ({"new_point": 5}, TypeError, "did you mean 'new_points'"),
    ({"sampler_kwargs": {"max_time_f": 5}}, TypeError, "did you mean 'max_time_fs'"),
    ({"model_kwargs": {"sigmaa": 1.0}}, TypeError, "KREG got an unknown keyword 'sigmaa'"),
    ({"reference": "B3LIP/6-31G*"}, ValueError, "unknown method"),
    ({"optfreq": "B3LIP/6-31G*"}, ValueError, "unknown method"),
    ({"reference": 42}, TypeError, "reference must be a method name"),
    ({"new_points": "10"}, TypeError, "new_points must be an integer"),
    ({"uq_threshold": -1.0}, ValueError, "uq_threshold must be >= 0"),
    ({"temperature": "300 K"}, TypeError, "temperature must be a number"),
    ({"sampler": _sampler_without_threshold}, TypeError, r"sampler\(model, initial_conditions"),
    ({"model": _NotTrainable}, TypeError, "train\\(images, forces"),
    ({"model": _trained_kreg}, ValueError, "give an untrained model"),
    ({"reference": _Locked()}, TypeError, "cannot be sent to worker processes"),
    ({"executor": 4}, TypeError, "executor must be"),
    ({"initial_conditions": lambda n: []}, TypeError, r"initial_conditions\(n, seed\)"),
    ({"initial_data": [molecule("H2O")]}, ValueError, "does not match the molecule"),
    (
        {"sampling": Sampling(barrier_top_tolerance=0.1)},
        ValueError,
        r"barrier top at a transition state: mark one starting structure",
    ),
]


@pytest.mark.parametrize("options, error, message", BAD_LEARNER_OPTIONS)
def test_bad_learner_options_fail_in_the_constructor(tmp_path, options, error, message):
    options = {"reference": "GFN2-xTB", **options}
    if callable(options.get("model")) and options["model"] is _trained_kreg:
        options["model"] = _trained_kreg()
    with pytest.raises(error, match=message):
        ActiveLearner(molecule("H2"), workdir=tmp_path / "al", **options).run()
    assert not (tmp_path / "al" / "labelled.db").exists()


BAD_AL_OPTIONS = [
    ({"ml_models_kwarg": {}}, TypeError, "did you mean 'ml_models_kwargs'"),
    ({"sampler_kwargs": {"initcond_sampler": "wignersampling"}}, ValueError, "initcond_sampler"),
    (
        {"sampler_kwargs": {"initcond_sampler_kwargs": {"initial_temprature": 300}}},
        TypeError,
        "did you mean 'initial_temperature'",
    ),
    (
        {"sampler_kwargs": {"initcond_sampler_kwargs": {"generation_method": "harmonic"}}},
        ValueError,
        "'wigner' only",
    ),
    ({"sampler_kwargs": {"uq_threshold": 1e-6}, "uq_threshold": 0.01}, TypeError, "twice"),
    ({"init_ncvsplits": 3}, ValueError, "not supported by ase-al"),
    ({"initdata_sampler": "random"}, ValueError, "initdata_sampler 'random'"),
    ({"initial_points_refinement": "twice"}, ValueError, "one-shot"),
    ({"ml_model": "KRR"}, ValueError, "unknown model type"),
    ({"sampler_kwargs": {"time_step": "0.5 fs"}}, TypeError, None),
    ({"reference_method": None}, ValueError, "needs reference_method"),
]


@pytest.mark.parametrize("options, error, message", BAD_AL_OPTIONS)
def test_bad_mlatom_options_fail_before_any_label(tmp_path, options, error, message):
    options = {"reference_method": "GFN2-xTB", **options}
    with pytest.raises(error, match=message):
        ase_al.al(molecule=molecule("H2"), working_directory=str(tmp_path / "al"), **options)
    assert not (tmp_path / "al" / "labelled.db").exists()


def test_al_takes_option_objects_beside_mlatom_keywords(tmp_path):
    """ase-al's option objects pass through al() with MLatom's keywords (and are checked
    there, before any label)."""
    with pytest.raises(TypeError, match="did you mean 'max_time_fs'"):
        ase_al.al(
            molecule=molecule("H2"),
            reference_method="GFN2-xTB",
            working_directory=str(tmp_path / "al"),
            max_iterations=1,
            sampling=Sampling(options={"max_time_f": 5.0}),
        )
    assert not (tmp_path / "al").exists()


def test_calculators_refuse_parameters_they_do_not_know():
    pytest.importorskip("pyscf")
    with pytest.raises(TypeError, match="PySCF got an unknown keyword 'program'.*basis"):
        ase_al.methods("B3LYP/6-31G*", program="gaussian")
    with pytest.raises(TypeError, match="did you mean 'charge'"):
        ase_al.methods("GFN2-xTB", chrage=1)
    with pytest.raises(TypeError, match="KREG got an unknown keyword 'sigmaa'; did you mean"):
        ase_al.calculators.KREG(sigmaa=1.0)
    pytest.importorskip("torchani")
    with pytest.raises(TypeError, match="ANI got an unknown keyword 'model_file'.*max_epochs"):
        ase_al.calculators.ANI(model_file="ani1x_state_dict.pt")
    # what they do accept still works, including ASE's own constructor arguments
    calc = ase_al.methods("GFN2-xTB", charge=0, multiplicity=1)
    assert calc.parameters["charge"] == 0
    ase_al.calculators.KREG(sigma=1.0, label="kreg")


def test_default_executor_is_shared_and_ships_lambdas():
    from ase_al.executors import default_executor

    pool = default_executor()
    assert pool.submit(lambda x: x + 1, 41).result() == 42
    assert default_executor() is pool  # reused, not restarted
    # workers are separate processes with one thread each on a machine this size
    pid, threads = pool.submit(lambda: (os.getpid(), os.environ.get("OMP_NUM_THREADS"))).result()
    assert pid != os.getpid()
    assert threads == "1"  # one worker per core


KILLED_DRIVER = """
import sys, time
from ase_al.executors import default_executor

def task(path):
    import os, time
    open(path, "w").write(str(os.getpid()))
    time.sleep(120)  # a long task: a network's training

future = default_executor().submit(task, sys.argv[1])
time.sleep(120)
"""


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_workers_exit_when_the_script_that_started_them_is_killed(tmp_path, signal_name):
    """A script killed mid-task (``kill``, a batch system's SIGKILL) leaves no worker
    running the task on: the worker's pid is gone within a few seconds."""
    import signal
    import time

    marker = tmp_path / "worker.pid"
    driver = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = int(marker.read_text())
        os.kill(worker, 0)  # running the task
        driver.send_signal(getattr(signal, signal_name))
        driver.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail(f"worker {worker} still running 10 s after its script was killed")
    finally:
        driver.kill()


def test_a_dead_worker_is_reported_as_such_not_blamed_on_the_reference(tmp_path):
    from ase_al.executors import default_executor
    from ase_al.labelling import label

    class Dies(ase_al.calculators.XTB):
        def calculate(self, atoms=None, properties=None, system_changes=None):
            os._exit(1)

    images = [molecule("H2")]
    images[0].info["uid"] = "a"
    with pytest.raises(RuntimeError, match="worker processes stopped"):
        label(images, Dies(), executor=default_executor(), progress=False)
    # the pool recovers for the next job
    assert default_executor().submit(lambda: Atoms("H").get_chemical_symbols()).result() == ["H"]


def test_docs_show_the_keyword_table_the_code_uses():
    from ase_al.mlatom_compat import keyword_table

    assert keyword_table() in (ROOT / "docs" / "mlatom.md").read_text()
