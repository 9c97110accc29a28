"""The documentation: every relative link and anchor resolves, long pages open with contents."""

import pytest

from tests.markdown_pages import (
    PAGES,
    ROOT,
    anchors,
    contents,
    headings,
    prose_lines,
    relative_links,
    section_headings,
)

DOCS = sorted((ROOT / "docs").glob("*.md"))
LONG_PAGE_LINES = 150


def _name(page):
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_leads_to_a_file_that_exists(page):
    missing = [
        target
        for target in relative_links(page.read_text())
        if target.split("#", 1)[0] and not (page.parent / target.split("#", 1)[0]).exists()
    ]
    assert not missing, f"{_name(page)} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_link_to_an_anchor_names_a_heading_of_its_page(page):
    broken = []
    for target in relative_links(page.read_text()):
        path, _, fragment = target.partition("#")
        linked = (page.parent / path) if path else page
        is_page = linked.suffix == ".md" and linked.is_file()
        if fragment and is_page and fragment not in anchors(linked.read_text()):
            broken.append(target)
    assert not broken, f"{_name(page)} links to anchors no heading gives: {broken}"


@pytest.mark.parametrize("page", DOCS, ids=_name)
def test_a_long_docs_page_lists_its_sections_in_order(page):
    text = page.read_text()
    if len(text.splitlines()) <= LONG_PAGE_LINES and "## Contents" not in text:
        pytest.skip(f"{_name(page)} is short and has no contents list")
    assert "## Contents" in text, f"{_name(page)} is long and has no ## Contents"
    assert contents(text) == section_headings(text)


@pytest.mark.parametrize("page", DOCS, ids=_name)
def test_a_docs_page_opens_with_its_title_and_what_a_reader_finds_there(page):
    lines = [line for line in prose_lines(page.read_text()) if line.strip()]
    assert len(headings(page.read_text(), "1-1")) == 1, f"{_name(page)}: one # title"
    assert lines[0].startswith("# "), f"{_name(page)} does not open with its # title"
    assert not lines[1].startswith(("#", "|", "-", ">")), (
        f"{_name(page)}: the title is not followed by a sentence saying what the page is for"
    )
