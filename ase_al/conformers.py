"""Conformer ensembles: RDKit's ETKDG embeddings, optimised with any ASE calculator,
deduplicated, each checked to be a minimum by its frequencies.

RDKit comes with ``pip install 'ase-al[conformers]'``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from tqdm.auto import tqdm

from ase_al.errors import require

log = logging.getLogger("ase_al")

#: duplicates: heavy-atom RMSD (symmetry-aware, after alignment) below this, Å ...
RMSD_THRESHOLD = 0.125
#: ... and energies closer than this, eV (0.1 kcal/mol)
ENERGY_THRESHOLD = 0.1 * units.kcal / units.mol


@dataclass
class Conformer:
    """One conformer: its optimised structure (``calc`` attached), energy (eV), energy above
    the lowest conformer (eV) and harmonic analysis (None when frequencies were not asked)."""

    atoms: Atoms
    energy: float
    relative_energy: float
    vibrations: object | None


def _rdkit_molecule(molecule):
    """An RDKit molecule with explicit hydrogens from a SMILES string, an RDKit Mol or ASE Atoms
    (bonds perceived from the geometry, atom order kept)."""
    require("rdkit", "conformers")
    from rdkit import Chem

    if isinstance(molecule, str):
        mol = Chem.MolFromSmiles(molecule)
        if mol is None:
            raise ValueError(f"RDKit cannot read the SMILES {molecule!r}")
        return Chem.AddHs(mol)
    if isinstance(molecule, Atoms):
        from rdkit.Chem import rdDetermineBonds

        block = f"{len(molecule)}\n\n" + "\n".join(
            f"{s} {x:.8f} {y:.8f} {z:.8f}"
            for s, (x, y, z) in zip(
                molecule.get_chemical_symbols(), molecule.positions, strict=True
            )
        )
        mol = Chem.MolFromXYZBlock(block)
        charge = int(molecule.info.get("charge", 0))
        try:
            rdDetermineBonds.DetermineBonds(mol, charge=charge)
        except ValueError as err:
            raise ValueError(f"RDKit cannot assign bonds to this structure: {err}") from None
        return mol
    if type(molecule).__module__.startswith("rdkit"):
        return Chem.Mol(molecule)
    raise TypeError(
        "molecule must be a SMILES string, ase.Atoms or an RDKit Mol, got "
        f"{type(molecule).__name__}"
    )


def _torsions(mol) -> list[tuple[int, int, int, int]]:
    """One dihedral (a, b, c, d) per rotatable bond: single, not in a ring, both ends bonded
    to something else (terminal rotors such as O-H and N-H2 count: they make conformers too)."""
    torsions = []
    for bond in mol.GetBonds():
        if bond.GetBondTypeAsDouble() != 1.0 or bond.IsInRing():
            continue
        b, c = bond.GetBeginAtom(), bond.GetEndAtom()
        if b.GetAtomicNum() == 1 or c.GetAtomicNum() == 1:
            continue

        def other(atom, exclude):
            # a heavy neighbour if there is one: its dihedral moves the larger part
            choices = [n for n in atom.GetNeighbors() if n.GetIdx() != exclude.GetIdx()]
            choices.sort(key=lambda n: n.GetAtomicNum() == 1)
            return choices[0].GetIdx() if choices else None

        a, d = other(b, c), other(c, b)
        if a is not None and d is not None:
            torsions.append((a, b.GetIdx(), c.GetIdx(), d))
    return torsions


def _heavy_rmsd(a: Atoms, b: Atoms, template) -> float:
    """Symmetry-aware heavy-atom RMSD (Å) after optimal alignment (RDKit's GetBestRMS)."""
    from rdkit import Chem
    from rdkit.Chem import rdMolAlign
    from rdkit.Geometry import Point3D

    mols = []
    for atoms in (a, b):
        mol = Chem.Mol(template)
        mol.RemoveAllConformers()
        conformer = Chem.Conformer(len(atoms))
        for i, (x, y, z) in enumerate(atoms.positions):
            conformer.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
        mol.AddConformer(conformer, assignId=True)
        mols.append(Chem.RemoveHs(mol))
    return float(rdMolAlign.GetBestRMS(mols[0], mols[1]))


def conformers(
    molecule,
    calc,
    n_embed: int = 30,
    seed: int = 0,
    fmax: float = 1e-3,
    energy_window: float | None = None,
    rmsd_threshold: float = RMSD_THRESHOLD,
    energy_threshold: float = ENERGY_THRESHOLD,
    frequencies: bool = True,
    preoptimize: bool = True,
    progress: bool | None = None,
) -> list[Conformer]:
    """Distinct conformers of ``molecule`` at the level of ``calc``, lowest energy first.

    Parameters
    ----------
    molecule : str, Atoms or rdkit Mol
        A SMILES string, a structure (bonds perceived by RDKit; atom order kept) or an RDKit
        molecule.
    calc : Calculator
        The potential every embedding is optimised with (a method name works too).
    n_embed : int
        ETKDG embeddings to start from (seeded by ``seed``); all but the first get random
        angles about every rotatable bond (terminal O–H, N–H rotors included).
    fmax : float
        Optimisation threshold, eV/Å.
    energy_window : float, optional
        eV: keep only conformers within it of the lowest.
    rmsd_threshold, energy_threshold : float
        Two optimised structures are the same conformer when their symmetry-aware heavy-atom
        RMSD is below ``rmsd_threshold`` (Å, default 0.125) and their energies differ by less
        than ``energy_threshold`` (eV, default 0.1 kcal/mol).
    frequencies : bool
        Harmonic analysis of each conformer; structures with an imaginary mode (< −50 cm⁻¹)
        are not minima and are dropped.
    preoptimize : bool
        Relax the embeddings with RDKit's MMFF94 force field first (UFF where MMFF has no
        parameters): a quarter of the optimisation steps with ``calc`` (measured on butane).

    Returns
    -------
    list[Conformer]
        Optimisations that changed the bonds (a reaction, not a conformer) are dropped; the
        counts of what was dropped and why are logged.
    """
    from rdkit.Chem import AllChem

    from ase_al.calculators import methods
    from ase_al.reactions import connectivity
    from ase_al.simulations import IMAGINARY_CM1, freq, optimize_geometry

    if isinstance(calc, str):
        calc = methods(calc)
    if n_embed < 1:
        raise ValueError(f"n_embed must be at least 1, got {n_embed}")
    mol = _rdkit_molecule(molecule)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=int(n_embed), params=params))
    if not ids:
        raise ValueError("RDKit could not embed this molecule in 3D")
    # ETKDG's torsion preferences make small molecules' embeddings nearly alike (glycine: one
    # conformer from 40 of them); every embedding but the first gets its rotatable bonds set to
    # random angles, so the optimisations start in different basins
    from rdkit.Chem import rdMolTransforms

    rng = np.random.default_rng(seed)
    torsions = _torsions(mol)
    for conf_id in ids[1:]:
        conformer = mol.GetConformer(conf_id)
        for a, b, c, d in torsions:
            rdMolTransforms.SetDihedralDeg(conformer, a, b, c, d, float(rng.uniform(0, 360)))
    if preoptimize:
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
        elif AllChem.UFFHasAllMoleculeParams(mol):
            AllChem.UFFOptimizeMoleculeConfs(mol, maxIters=2000)
    symbols = [atom.GetSymbol() for atom in mol.GetAtoms()]
    reference_bonds = None
    optimised, dropped = [], {"bonds changed": 0, "not a minimum": 0, "duplicate": 0}
    for conf_id in tqdm(ids, desc="conformers", disable=None if progress is None else not progress):
        atoms = Atoms(symbols, positions=mol.GetConformer(conf_id).GetPositions())
        if isinstance(molecule, Atoms):
            atoms.info.update(molecule.info)
        if reference_bonds is None:
            reference_bonds = connectivity(atoms)
        relaxed = optimize_geometry(atoms, calc, fmax=fmax, optimizer="LBFGS")
        if not np.array_equal(connectivity(relaxed), reference_bonds):
            dropped["bonds changed"] += 1
            continue
        optimised.append((relaxed.get_potential_energy(), relaxed))
    optimised.sort(key=lambda pair: pair[0])
    kept: list[tuple[float, Atoms]] = []
    for energy, atoms in optimised:
        same = any(
            abs(energy - e) < energy_threshold and _heavy_rmsd(atoms, a, mol) < rmsd_threshold
            for e, a in kept
        )
        if same:
            dropped["duplicate"] += 1
        else:
            kept.append((energy, atoms))
    if not kept:
        raise ValueError(f"no conformer kept of {len(ids)} embeddings ({dropped})")
    lowest = kept[0][0]
    result = []
    for energy, atoms in kept:
        if energy_window is not None and energy - lowest > energy_window:
            continue
        vibrations = None
        if frequencies:
            vibrations = freq(atoms, calc)
            if np.any(vibrations.frequencies < IMAGINARY_CM1):
                dropped["not a minimum"] += 1
                continue
        atoms.info["relative_energy"] = energy - lowest
        result.append(Conformer(atoms, energy, energy - lowest, vibrations))
    log.info("%d conformers from %d embeddings; dropped: %s", len(result), len(ids), dropped)
    return result


def reoptimize(
    structures: list[Atoms], calc, fmax: float = 1e-3, steps: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """Each structure (e.g. a reference method's conformers) relaxed with ``calc`` (e.g. a
    learned potential): the energies at ``calc``'s minima (eV) and each minimum's all-atom
    RMSD from the structure it started from (Å, after the best rotation and translation).

    Relative energies of the two methods compare their own minima, as conformer energies
    are compared."""
    from ase.build import minimize_rotation_and_translation

    from ase_al.simulations import optimize_geometry, resolve_calculator

    structures = list(structures)
    if not structures:
        raise ValueError("reoptimize: no structures given")
    calc = resolve_calculator(calc, structures[0], "reoptimize")
    energies, rmsds = [], []
    for atoms in structures:
        relaxed = optimize_geometry(atoms, calc, fmax=fmax, steps=steps)
        energies.append(relaxed.get_potential_energy())
        aligned = relaxed.copy()
        minimize_rotation_and_translation(atoms, aligned)
        rmsds.append(np.sqrt(np.mean(np.sum((aligned.positions - atoms.positions) ** 2, axis=1))))
    return np.array(energies), np.array(rmsds)
