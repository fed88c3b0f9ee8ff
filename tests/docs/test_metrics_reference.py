"""The metric reference page is the catalog, as the code declares it."""

from __future__ import annotations

from pathlib import Path

from probed.output.catalog import all_families, reference_markdown

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "metrics.md"
BEGIN, END = "<!-- generated from the catalog: begin -->\n", "<!-- generated from the catalog: end -->"


def test_the_metrics_page_is_generated_from_the_catalog() -> None:
    text = PAGE.read_text()
    generated = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    assert generated == reference_markdown(), "regenerate: python -m probed.output.catalog"


def test_every_family_is_on_the_page_once() -> None:
    text = PAGE.read_text()
    for family in all_families():
        assert text.count(f"| `{family.name}` |") == 1, family.name
