"""The packages depend on each other one way only (docs/architecture.md, "Layout"):

    cardiomm  <-  federation  <-  strategies  <-  client, server  <-  simulations, benchmarks

A deployed site runs client/ on cardiomm/ and federation/ alone; the research harness may
use everything below it; nothing imports the harness or the benchmarks. The library holds no
Flower, and Hydra only in its configuration module. Checked on every import statement,
including those inside functions.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"cardiomm", "strategies", "federation", "client", "server", "simulations", "benchmarks"}
ALLOWED = {
    "cardiomm": {"cardiomm"},
    "strategies": {"cardiomm", "federation", "strategies"},
    "federation": {"cardiomm", "federation"},
    "client": {"cardiomm", "strategies", "federation", "client"},
    "server": {"cardiomm", "strategies", "federation", "server"},
    "simulations": PROJECT - {"benchmarks"},
    "benchmarks": PROJECT,
}
# Third-party frameworks kept out of the library: Flower everywhere in it, Hydra outside the
# module that composes the configuration.
LIBRARY_CONFIG_MODULE = ROOT / "cardiomm" / "config.py"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_below_it(package):
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _files(package)
        for line, module in _imports(path)
        if module in PROJECT and module not in ALLOWED[package]
    ]
    assert wrong == []


def test_the_library_never_imports_flower():
    wrong = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _files("cardiomm")
        for line, module in _imports(path)
        if module == "flwr"
    ]
    assert wrong == []


def test_the_library_composes_hydra_configs_in_one_module_only():
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _files("cardiomm")
        for line, module in _imports(path)
        if module in ("hydra", "omegaconf") and path != LIBRARY_CONFIG_MODULE
    ]
    assert wrong == []
