"""The README: CI runs its set-up and test commands; its contents list every section; its
headline table is the quick study report's own."""

import re

from tests.markdown_pages import ROOT, contents, section_headings

QUICK_REPORT = ROOT / "docs" / "results" / "quick-study" / "report.md"


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


def test_the_contents_list_every_section_in_order():
    text = (ROOT / "README.md").read_text()
    assert contents(text) == section_headings(text)


def test_the_headline_table_is_copied_row_for_row_from_the_quick_study_report():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Headline result", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    report_lines = QUICK_REPORT.read_text().splitlines()
    start = report_lines.index(table[0])
    assert table == report_lines[start : start + len(table)]
    assert len(table) > 2, "the headline table has no rows"
