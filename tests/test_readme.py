"""The README: CI runs its set-up and test commands; its contents list every section."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    section = (
        (ROOT / "README.md").read_text().split("## Set up and test", 1)[1].split("\n## ", 1)[0]
    )
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)]


def test_readme_gives_exactly_one_set_up_and_one_test_command():
    commands = _readme_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_ci_runs_the_readme_commands_in_order():
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    set_up, test = _readme_commands()
    assert ci_lines.index(set_up) < ci_lines.index(test)


def _headings(text: str) -> list[str]:
    """The ## and ### headings outside code blocks, in order."""
    headings, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"^#{2,3} ", line) and line != "## Contents":
            headings.append(line.lstrip("#").strip())
    return headings


def test_the_contents_list_every_section_in_order():
    text = (ROOT / "README.md").read_text()
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\s*- \[(.+?)\]\(#[\w-]+\)$", contents, flags=re.MULTILINE)
    assert listed == _headings(text)
