"""Every script in examples/ runs after ``pip install -e .`` plus what README's "Examples"
table names for it: each module it imports is the standard library, tfft, a dependency,
a package of a named extra, or a package the row installs with ``pip install --no-deps``."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys

import pytest
from helpers import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

#: the scripts to run; ``_name.py`` modules are what they share (examples/_recipes.py), not examples
EXAMPLES = sorted(
    path
    for path in (REPO / "examples").iterdir()
    if path.suffix in (".py", ".sh") and not path.name.startswith("_")
)
FIRST_PARTY = {"tfft", "tfft_cli"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalized(re.match(r"[A-Za-z0-9_.-]+", requirement.strip()).group(0))


def imported_modules(path) -> set[str]:
    """Top-level modules a Python file imports (anywhere in it; a sibling module it imports
    stands for what that one imports), or a shell script's ``python -c`` snippets and
    heredocs import."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        modules = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
        siblings = {module for module in modules if (path.parent / f"{module}.py").is_file()}
        for module in siblings - {path.stem}:
            modules |= imported_modules(path.parent / f"{module}.py")
        return modules - siblings
    modules = set()
    for names in re.findall(r"\bimport ((?:[A-Za-z_][\w.]*\s*,\s*)*[A-Za-z_][\w.]*)", text):
        modules.update(name.strip().split(".")[0] for name in names.split(","))
    modules.update(re.findall(r"\bfrom ([A-Za-z_]\w*)[\w.]* import\b", text))
    return modules


def readme_rows() -> dict[str, str]:
    """``{"examples/NAME": row}`` from the table in README's "Examples" section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Examples\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*`(examples/[^`]+)`", line)
        if match:
            rows[match.group(1)] = line
    return rows


def installed_by(row: str) -> set[str]:
    """Distributions a README row installs: the dependencies, its extras, its --no-deps packages."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {requirement_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    for group in re.findall(r"\.\[([\w,-]+)\]", row):
        for extra in group.split(","):
            assert extra in extras, f"README names the extra {extra!r}, which pyproject.toml lacks"
            names.update(requirement_name(r) for r in extras[extra])
    names.update(
        normalized(name)
        for name in re.findall(r"--no-deps\s+'?([A-Za-z0-9_.-]+?)(?:==[^'\s`]*)?'?[\s`]", row)
    )
    return names


def distributions_of(module: str) -> set[str]:
    """The distributions that provide a top-level module (its own name when not installed)."""
    found = importlib.metadata.packages_distributions().get(module)
    return {normalized(name) for name in found} if found else {normalized(module)}


def test_every_example_has_a_readme_row():
    rows = readme_rows()
    assert {f"examples/{path.name}" for path in EXAMPLES} <= set(rows), sorted(rows)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_imports_are_installable(path):
    row = readme_rows()[f"examples/{path.name}"]
    available = installed_by(row)
    missing = sorted(
        module
        for module in imported_modules(path)
        if module not in sys.stdlib_module_names
        and module not in FIRST_PARTY
        and not distributions_of(module) & available
    )
    assert not missing, f"{path.name} imports {missing}: not installed by README's row: {row}"


def test_the_check_catches_a_missing_extra(tmp_path):
    """The example that needs sentencepiece fails the check without the ``examples`` extra."""
    script = tmp_path / "uses_sentencepiece.py"
    script.write_text("import json\n\ndef main():\n    import sentencepiece\n")
    assert imported_modules(script) == {"json", "sentencepiece"}
    assert "sentencepiece" not in installed_by("| `examples/x.py` | `pip install -e .` |")
    assert "sentencepiece" in installed_by("| `examples/x.py` | `pip install -e '.[examples]'` |")


def test_a_shared_sibling_module_counts_with_its_imports(tmp_path):
    """An example that imports examples/_recipes.py needs what _recipes.py imports."""
    (tmp_path / "_shared.py").write_text("import os\n\ndef build():\n    import sentencepiece\n")
    script = tmp_path / "example.py"
    script.write_text("import json\nimport _shared\nfrom _shared import build\n")
    assert imported_modules(script) == {"json", "os", "sentencepiece"}
