"""Reading the project's Markdown pages as GitHub renders them: headings, anchors, links."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Every page a reader is sent to from the README; the study reports are generated files.
PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "deploy" / "README.md",
        ROOT / "benchmarks" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)

_LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)\)")
_CODE_SPAN = re.compile(r"`[^`]*`")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def headings(text: str, levels: str = "1-6") -> list[str]:
    """The headings of the given levels outside code blocks, in order, as written."""
    pattern = re.compile(rf"^#{{{levels.replace('-', ',')}}} ")
    return [line.lstrip("#").strip() for line in prose_lines(text) if pattern.match(line)]


def section_headings(text: str) -> list[str]:
    """The ## and ### headings a contents list names: all of them but Contents itself."""
    return [heading for heading in headings(text, "2-3") if heading != "Contents"]


def contents(text: str) -> list[str]:
    """The section names the page's ## Contents list links to, in order."""
    listed = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\s*- \[(.+?)\]\(#[\w-]+\)$", listed, flags=re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, - for spaces."""
    text = heading.strip().lower().replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor the page's headings give, with GitHub's -1, -2 for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(text):
        base = anchor(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(text: str) -> list[str]:
    """Link and image targets outside code that point into the repository (no scheme)."""
    prose = _CODE_SPAN.sub("", "\n".join(prose_lines(text)))
    return [target for target in _LINK.findall(prose) if not re.match(r"[a-z]+:", target)]
