"""The documentation builds with warnings as errors, and what the README links to exists."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_with_warnings_as_errors(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("ActiveLearner") > 3


def test_readme_links_resolve_and_it_stays_short():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_methods_page_lists_every_name_methods_resolves():
    # the names a fresh interpreter knows (tests register names of their own at run time)
    names = subprocess.run(
        [sys.executable, "-c", "from ase_al.calculators import available; print(available())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    page = (ROOT / "docs" / "methods.md").read_text()
    table = [line for line in page.splitlines() if line.startswith("| `")]
    documented = " ".join(line.split("|")[1] for line in table)
    for name in eval(names):  # a printed list of strings
        assert f"`{name}`" in documented, f"{name} is missing from docs/methods.md"
