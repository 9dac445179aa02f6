"""Models made of saved member models (Composite, MultiState): one directory, a JSON manifest
naming each member's file and type, the members in their own formats."""

from __future__ import annotations

import json
from pathlib import Path

from ase_al.files import atomic_write


def save_members(directory: Path, models: list, prefix: str) -> list[dict]:
    """Save ``models`` as ``<prefix>_<k><extension>`` in ``directory``; their manifest entries."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for k, model in enumerate(models):
        name = f"{prefix}_{k}{getattr(model, 'file_extension', '')}"
        model.save(directory / name)
        entries.append({"file": name, "type": type(model).__name__})
    return entries


def write_manifest(directory: Path, name: str, meta: dict) -> None:
    with atomic_write(directory / name) as partial:
        partial.write_text(json.dumps(meta, indent=1))


def read_manifest(directory: Path, name: str, expected_format: str) -> dict:
    """The manifest ``name`` in ``directory``, checked to be of ``expected_format``."""
    manifest = Path(directory) / name
    if not manifest.is_file():
        raise FileNotFoundError(f"{directory} is not a saved model directory (no {name})")
    try:
        meta = json.loads(manifest.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{manifest} is not valid JSON: {err}") from None
    if meta.get("format") != expected_format:
        raise ValueError(
            f"{manifest} is not an {expected_format} file (format {meta.get('format')!r})"
        )
    return meta


def load_members(directory: Path, entries: list[dict]) -> list:
    """The member models listed in a manifest, each loaded by its registered type."""
    from ase_al.calculators import model_class

    return [model_class(e["type"]).load(Path(directory) / e["file"]) for e in entries]
