"""No function in the project's packages runs over 60 lines (issue 28, item 5).

A function's length is from its ``def`` line to its last line, docstring and comments
included, decorators not. The functions over the limit when this test was written are listed
below with their length then; the list can only shrink: a listed function may not grow, and
one that is shortened to the limit must leave the list (so it stays honest). A long function
outside the list fails the test: split it into named steps, each with one job.
"""

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cardiomm", "client", "server", "federation", "strategies", "simulations", "benchmarks")
LIMIT = 60

# "path:qualified name" -> its length when listed.
ALLOWED = {
    # Synthetic data: the consortium's site table.
    "cardiomm/data/synthetic/sites.py:_study_sites": 75,  # a data table: one entry per site
}


def function_lengths(source: str) -> dict[str, int]:
    """Qualified name (``Class.method``, ``outer.inner``) -> length in lines, of every
    function and method in ``source``."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                lengths[name] = child.end_lineno - child.lineno + 1
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def _project_lengths() -> dict[str, int]:
    return {
        f"{path.relative_to(ROOT)}:{name}": length
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for name, length in function_lengths(path.read_text()).items()
    }


@pytest.fixture(scope="module")
def lengths() -> dict[str, int]:
    return _project_lengths()


def test_a_function_is_measured_from_its_def_line_to_its_last():
    source = "@decorated\ndef f():\n" + "".join(f"    x{i} = {i}\n" for i in range(60))
    assert function_lengths(source) == {"f": 61}


def test_methods_and_nested_functions_are_measured_under_their_qualified_names():
    source = textwrap.dedent(
        """
        class C:
            def method(self):
                return 1

        def outer():
            def inner():
                return 2
            return inner
        """
    )
    assert function_lengths(source) == {"C.method": 2, "outer": 4, "outer.inner": 2}


def test_no_function_outside_the_allow_list_runs_over_the_limit(lengths):
    long = {name: n for name, n in lengths.items() if n > LIMIT and name not in ALLOWED}
    assert long == {}, "split these into named steps (or, only if they cannot be, list them)"


def test_no_allow_listed_function_grew(lengths):
    grown = {
        name: f"{ALLOWED[name]} -> {lengths[name]}"
        for name in ALLOWED
        if name in lengths and lengths[name] > ALLOWED[name]
    }
    assert grown == {}


def test_every_allow_listed_function_still_exists_and_is_over_the_limit(lengths):
    stale = {name: lengths.get(name) for name in ALLOWED if lengths.get(name, 0) <= LIMIT}
    assert stale == {}, "shortened, renamed or removed: take these out of ALLOWED"
