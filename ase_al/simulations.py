"""Geometry optimisation, harmonic frequencies, IR intensities and thermochemistry.

Thin layers over ASE (``ase.optimize``, ``ase.vibrations.VibrationsData``,
``ase.thermochemistry.IdealGasThermo``). Units are ASE's: eV, Å, amu; frequencies in cm⁻¹,
IR intensities in km/mol.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.linalg
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.vibrations import VibrationsData
from tqdm.auto import tqdm

from ase_al.errors import check_atoms

log = logging.getLogger("ase_al")

#: ħ in ASE units (eV · ASE time); ASE time is Å·sqrt(amu/eV).
HBAR = units._hbar * units.J * units.s
#: |dμ/dQ|² in e²/amu to IR intensity in km/mol (N_A π / (3 c²) · (4π ε0)⁻¹ in these units).
IR_KM_PER_MOL = 974.8801
#: cm⁻¹: a harmonic frequency below this counts as an imaginary mode (the numerical Hessian
#: of a stationary point leaves the translations and rotations within tens of cm⁻¹ of 0)
IMAGINARY_CM1 = -50.0
_OPTIMIZERS = ("BFGS", "LBFGS", "FIRE", "BFGSLineSearch", "GPMin")


def resolve_calculator(calc, atoms: Atoms, who: str) -> Calculator:
    """``calc`` (a calculator, or a method name for :func:`ase_al.methods`), else
    ``atoms.calc``; a one-line error naming ``who`` when there is none or it is no
    calculator."""
    from ase_al.options import check_calculator

    calc = calc if calc is not None else atoms.calc
    if calc is None:
        raise ValueError(f"{who} needs a calculator (calc= or atoms.calc)")
    check_calculator(calc, "calc")
    if isinstance(calc, str):
        from ase_al.calculators import methods

        return methods(calc)
    return calc


def optimize_geometry(
    atoms: Atoms,
    calc: Calculator | None = None,
    fmax: float = 0.001,
    steps: int = 1000,
    optimizer: str = "BFGS",
    trajectory: str | None = None,
    logfile: str | None = None,
) -> Atoms:
    """Relax ``atoms`` with an ASE optimizer and return the optimised copy.

    Parameters
    ----------
    atoms : Atoms
        Starting geometry (left untouched).
    calc : Calculator or str, optional
        The potential (or a method name); defaults to ``atoms.calc``.
    fmax : float
        Convergence threshold on the largest atomic force, eV/Å.
    steps : int
        Maximum optimizer steps; a warning is issued when they run out.
    optimizer : str
        ``"BFGS"``, ``"LBFGS"``, ``"FIRE"``, ``"BFGSLineSearch"`` or ``"GPMin"``.
    trajectory : str, optional
        A ``.traj`` file to write the path to (opens in ``ase gui``).
    logfile : str, optional
        Optimizer log; ``"-"`` for standard output, ``None`` for silence.

    Returns
    -------
    Atoms
        The optimised structure, with ``calc`` attached and ``info["optimization_converged"]``.
    """
    import ase.optimize

    check_atoms(atoms)
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {_OPTIMIZERS}")
    calc = resolve_calculator(calc, atoms, "optimize_geometry")
    relaxed = atoms.copy()
    relaxed.calc = calc
    opt = getattr(ase.optimize, optimizer)(relaxed, trajectory=trajectory, logfile=logfile)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    if not converged:
        warnings.warn(
            f"geometry optimisation did not reach fmax={fmax} eV/Å in {steps} steps", stacklevel=2
        )
    relaxed.info["optimization_converged"] = converged
    return relaxed


def central_differences(
    atoms: Atoms, calc: Calculator, quantities: dict, delta: float = 0.005
) -> dict[str, np.ndarray]:
    """Derivatives d q/d x_k (3N, ...) of each ``quantities[name](atoms)`` by central differences.

    All quantities are read from the same 6N displaced calculations (step ``delta`` in Å).
    """
    work = atoms.copy()
    work.calc = calc
    reference = atoms.get_positions()
    derivatives: dict[str, list] = {name: [] for name in quantities}
    for k in tqdm(range(3 * len(atoms)), desc="finite differences", disable=None, leave=False):
        values = []
        for sign in (1.0, -1.0):
            positions = reference.copy()
            positions[k // 3, k % 3] += sign * delta
            work.set_positions(positions)
            values.append({name: np.asarray(get(work)) for name, get in quantities.items()})
        for name in quantities:
            derivatives[name].append((values[0][name] - values[1][name]) / (2 * delta))
    return {name: np.array(rows) for name, rows in derivatives.items()}


def finite_difference_hessian(
    atoms: Atoms, calc: Calculator | None = None, delta: float = 0.005, dipoles: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Hessian (3N, 3N, eV/Å²) by central differences of forces, and dipole derivatives.

    With ``dipoles=True`` the same displaced calculations also give dμ/dx (3N, 3) in e.
    """
    calc = calc if calc is not None else atoms.calc
    quantities = {"gradient": lambda a: -a.get_forces().ravel()}
    if dipoles:
        quantities["dipole"] = lambda a: a.get_dipole_moment()
    result = central_differences(atoms, calc, quantities, delta)
    hessian = result["gradient"]
    return 0.5 * (hessian + hessian.T), result.get("dipole")


def rigid_body_basis(atoms: Atoms) -> np.ndarray:
    """Orthonormal mass-weighted translation/rotation vectors, shape (3N, 5 or 6)."""
    masses = atoms.get_masses()
    sqrt_m = np.sqrt(masses)
    centred = atoms.get_positions() - atoms.get_center_of_mass()
    vectors = []
    for axis in np.eye(3):
        vectors.append((sqrt_m[:, None] * axis).ravel())
        vectors.append((sqrt_m[:, None] * np.cross(axis, centred)).ravel())
    u, s, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


def is_linear(atoms: Atoms) -> bool:
    """True for a linear molecule (smallest principal moment of inertia vanishes)."""
    moments = atoms.get_moments_of_inertia()
    return len(atoms) == 2 or moments.min() < 1e-4 * moments.max()


class HarmonicAnalysis(VibrationsData):
    """ASE ``VibrationsData`` with translations and rotations projected out, plus IR and thermo.

    ``get_energies``/``get_frequencies`` (inherited) still list all 3N modes, the rigid-body
    ones at zero; the attributes below hold only the 3N−6 (3N−5 if linear) vibrations.

    Attributes
    ----------
    frequencies : ndarray
        Harmonic wavenumbers in cm⁻¹, ascending; imaginary modes as negative numbers.
    modes : ndarray (n_vib, N, 3)
        Normalised Cartesian displacement of each normal mode.
    ir_intensities : ndarray or None
        Intensities in km/mol (None when the calculator gives no dipoles).
    """

    #: where todict() keeps what VibrationsData has no field for (inside the Atoms' info, so
    #: that ASE's own JSON round trip, which decodes to a plain VibrationsData, keeps it too)
    INFO_KEY = "ase_al_harmonic_analysis"

    def __init__(
        self,
        atoms: Atoms,
        hessian: np.ndarray,
        dipole_derivatives: np.ndarray | None = None,
        potential_energy: float | None = None,
        indices=None,
    ):
        n = len(atoms)
        if indices is not None and sorted(int(i) for i in indices) != list(range(n)):
            raise ValueError(
                "HarmonicAnalysis analyses whole molecules: indices must be None or all atoms"
            )
        atoms = atoms.copy()
        atoms.info.pop(self.INFO_KEY, None)
        hessian = np.asarray(hessian, dtype=float).reshape(3 * n, 3 * n)
        inv_sqrt_m = np.repeat(atoms.get_masses() ** -0.5, 3)
        weighted = inv_sqrt_m[:, None] * hessian * inv_sqrt_m[None, :]
        internal = scipy.linalg.null_space(rigid_body_basis(atoms).T)
        eigenvalues, vectors = np.linalg.eigh(internal.T @ weighted @ internal)
        modes = (internal @ vectors).T  # (n_vib, 3N), orthonormal
        # An eigenvector's sign is arbitrary, and round-off (a geometry optimised again, a
        # Hessian from other threads) can flip it: then a seeded Wigner ensemble changes. Fix it:
        # the first component larger than a tenth of the mode's largest one is positive.
        leading = np.argmax(np.abs(modes) > 0.1 * np.abs(modes).max(axis=1, keepdims=True), axis=1)
        modes *= np.sign(modes[np.arange(len(modes)), leading])[:, None]
        self.mass_weighted_modes = modes
        #: angular frequencies in 1/(ASE time); negative for imaginary modes
        self.angular_frequencies = np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues))
        self.frequencies = self.angular_frequencies * HBAR / units.invcm
        cartesian = self.mass_weighted_modes * inv_sqrt_m[None, :]
        cartesian /= np.linalg.norm(cartesian, axis=1, keepdims=True)
        self.modes = cartesian.reshape(-1, n, 3)
        self.linear = is_linear(atoms)
        self.potential_energy = potential_energy
        self.dipole_derivatives = dipole_derivatives
        self.ir_intensities = None
        if dipole_derivatives is not None:
            dmu_dq = (self.mass_weighted_modes * inv_sqrt_m[None, :]) @ dipole_derivatives
            self.ir_intensities = IR_KM_PER_MOL * np.sum(dmu_dq**2, axis=1)
        projector = internal @ internal.T
        sqrt_m = np.repeat(atoms.get_masses() ** 0.5, 3)
        projected = sqrt_m[:, None] * (projector @ weighted @ projector) * sqrt_m[None, :]
        super().__init__(atoms, projected.reshape(n, 3, n, 3))

    # -- VibrationsData's I/O contract, with the IR and energy data kept -----------------
    def todict(self) -> dict:
        """VibrationsData's dict (atoms, projected Hessian, indices); the dipole derivatives
        and the potential energy ride in the Atoms' ``info``."""
        data = super().todict()
        atoms = data["atoms"].copy()
        atoms.info[self.INFO_KEY] = {
            "dipole_derivatives": self.dipole_derivatives,
            "potential_energy": self.potential_energy,
        }
        data["atoms"] = atoms
        return data

    @classmethod
    def fromdict(cls, data: dict) -> HarmonicAnalysis:
        """The inverse of :meth:`todict` (also accepts a plain VibrationsData's dict)."""
        atoms = data["atoms"].copy()
        extra = atoms.info.pop(cls.INFO_KEY, None) or {}
        derivatives = extra.get("dipole_derivatives")
        return cls(
            atoms,
            np.asarray(data["hessian"]).reshape(3 * len(atoms), 3 * len(atoms)),
            dipole_derivatives=None if derivatives is None else np.asarray(derivatives),
            potential_energy=extra.get("potential_energy"),
            indices=data.get("indices"),
        )

    @classmethod
    def from_vibrations(cls, vibrations: VibrationsData) -> HarmonicAnalysis:
        """A HarmonicAnalysis of any VibrationsData (e.g. what ``ase.io.jsonio`` decodes a
        written HarmonicAnalysis into: its IR data and energy come back)."""
        if isinstance(vibrations, cls):
            return vibrations
        return cls.fromdict(vibrations.todict())

    @classmethod
    def read(cls, fd) -> HarmonicAnalysis:
        """Read a file written by :meth:`write` (VibrationsData's JSON)."""
        return cls.from_vibrations(VibrationsData.read(fd))

    @property
    def vibrational_energies(self) -> np.ndarray:
        """Quanta ħω of the vibrations in eV (negative for imaginary modes)."""
        return self.frequencies * units.invcm

    def thermochemistry(
        self,
        temperature: float = 298.15,
        pressure: float = 101325.0,
        symmetrynumber: int = 1,
        multiplicity: int = 1,
    ) -> dict:
        """Ideal-gas, rigid-rotor, harmonic-oscillator thermochemistry (ASE ``IdealGasThermo``).

        Parameters
        ----------
        temperature : float
            K.
        pressure : float
            Pa.
        symmetrynumber : int
            Rotational symmetry number σ (2 for H2O, 3 for NH3, 12 for CH4, 2 for H2).
        multiplicity : int
            Electronic spin multiplicity 2S+1.

        Returns
        -------
        dict
            ``zpe``, ``enthalpy`` (H), ``entropy`` (S, eV/K), ``gibbs`` (G), all in eV and
            including the electronic energy when it is known, and ``thermo``, the ASE object.
        """
        from ase.thermochemistry import IdealGasThermo

        if np.any(self.frequencies < 0):
            raise ValueError(
                f"thermochemistry needs a minimum; imaginary modes at "
                f"{np.abs(self.frequencies[self.frequencies < 0]).round(1)} cm⁻¹"
            )
        thermo = IdealGasThermo(
            vib_energies=self.vibrational_energies,
            geometry="linear" if self.linear else "nonlinear",
            potentialenergy=self.potential_energy or 0.0,
            atoms=self.get_atoms(),
            symmetrynumber=symmetrynumber,
            spin=(multiplicity - 1) / 2,
            ignore_imag_modes=True,
        )
        return {
            "zpe": thermo.get_ZPE_correction(),
            "enthalpy": thermo.get_enthalpy(temperature, verbose=False),
            "entropy": thermo.get_entropy(temperature, pressure, verbose=False),
            "gibbs": thermo.get_gibbs_energy(temperature, pressure, verbose=False),
            "thermo": thermo,
        }


def freq(
    atoms: Atoms, calc: Calculator | None = None, delta: float = 0.005, ir: bool = True
) -> HarmonicAnalysis:
    """Harmonic frequencies, normal modes and IR intensities at ``atoms`` (a minimum), with
    ``calc`` (a calculator or a method name; default ``atoms.calc``).

    The Hessian is analytic when the calculator has ``get_hessian(atoms)``, otherwise central
    finite differences of forces with step ``delta`` (Å). IR intensities come from dipole
    derivatives when the calculator gives ``dipole``.
    """
    check_atoms(atoms)
    calc = resolve_calculator(calc, atoms, "freq")
    if len(atoms) < 2:
        raise ValueError("a single atom has no vibrations")
    work = atoms.copy()
    work.calc = calc
    energy = work.get_potential_energy()
    wants_dipoles = ir and "dipole" in getattr(calc, "implemented_properties", ())
    if hasattr(calc, "get_hessian"):
        hessian = calc.get_hessian(work)
        dipole_derivatives = (
            finite_difference_dipole_derivatives(work, calc, delta) if wants_dipoles else None
        )
    else:
        hessian, dipole_derivatives = finite_difference_hessian(work, calc, delta, wants_dipoles)
    return HarmonicAnalysis(work, hessian, dipole_derivatives, potential_energy=energy)


def finite_difference_dipole_derivatives(
    atoms: Atoms, calc: Calculator, delta: float = 0.005
) -> np.ndarray:
    """dμ/dx (3N, 3) in e by central differences of the dipole moment."""
    return central_differences(atoms, calc, {"dipole": lambda a: a.get_dipole_moment()}, delta)[
        "dipole"
    ]


def equilibrium_and_modes(
    molecule: Atoms,
    calc: Calculator | None,
    workdir,
    optimize: bool = True,
    vibrations: VibrationsData | None = None,
) -> tuple[Atoms, HarmonicAnalysis]:
    """Equilibrium geometry and normal modes, computed once and kept in ``workdir``.

    ``workdir/equilibrium.traj`` and ``workdir/hessian.npy`` (eV/Å²) are read when present
    (a resumed workflow), else written: from ``vibrations`` when given (``molecule`` is then
    the equilibrium), else by optimising ``molecule`` with ``calc`` (unless ``optimize`` is
    False) and computing its Hessian.
    """
    from pathlib import Path

    from ase.io import read

    from ase_al.files import write_traj

    workdir = Path(workdir)
    eq_path, hess_path = workdir / "equilibrium.traj", workdir / "hessian.npy"
    if eq_path.exists() and hess_path.exists():
        equilibrium = read(eq_path)
        return equilibrium, HarmonicAnalysis(equilibrium, np.load(hess_path))
    workdir.mkdir(parents=True, exist_ok=True)
    equilibrium = molecule
    if vibrations is None:
        if optimize:
            equilibrium = optimize_geometry(molecule, calc, fmax=1e-3)
        vibrations = freq(equilibrium, calc, ir=False)
        imaginary = vibrations.frequencies[vibrations.angular_frequencies <= 0].round(1)
        if optimize and imaginary.size:
            # a floppy minimum (a van der Waals complex, a free rotor) is not reached at
            # 1e-3 eV/Å: its soft modes still come out imaginary there
            log.info(
                "imaginary modes %s cm-1 at fmax 1e-3 eV/Å: optimising to 1e-4",
                imaginary.tolist(),
            )
            equilibrium = optimize_geometry(
                equilibrium, calc, fmax=1e-4, steps=5000, optimizer="LBFGS"
            )
            vibrations = freq(equilibrium, calc, ir=False)
            imaginary = vibrations.frequencies[vibrations.angular_frequencies <= 0].round(1)
            if imaginary.size:
                raise ValueError(
                    f"the optimised structure is no minimum: imaginary modes at {imaginary} "
                    "cm⁻¹ after optimising to 1e-4 eV/Å (mark a saddle point with "
                    "info['transition_state'] = True)"
                )
    equilibrium = Atoms(
        equilibrium.numbers, positions=equilibrium.positions, info=dict(molecule.info)
    )
    analysis = HarmonicAnalysis(equilibrium, vibrations.get_hessian_2d())
    np.save(hess_path, analysis.get_hessian_2d())
    write_traj(eq_path, [equilibrium])  # last and atomic: its presence means both are complete
    return equilibrium, analysis
