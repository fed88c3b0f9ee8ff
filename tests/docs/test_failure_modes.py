"""Failure IDs (H1, T2 ...) cited anywhere are explained on docs/failure-modes.md."""

from __future__ import annotations

import re

from .pages import DOCS, ROOT, markdown_files

CATALOG = DOCS / "failure-modes.md"
_CITED = re.compile(r"\b(?!S3\b)([HTDBAS][0-9]{1,2})\b")  # S3 is the AWS service, not an ID
_RANGE = re.compile(r"\b([HTDBAS])([0-9]{1,2})-\1?([0-9]{1,2})\b")
_ROW = re.compile(r"^\| ([HTDBAS][0-9]{1,2}) \| \S", re.MULTILINE)


def explained() -> set[str]:
    return set(_ROW.findall(CATALOG.read_text(encoding="utf-8")))


def cited(text: str) -> set[str]:
    ids = set(_CITED.findall(text))
    for letter, first, last in _RANGE.findall(text):
        ids |= {f"{letter}{n}" for n in range(int(first), int(last) + 1)}
    return ids


def test_the_catalog_explains_every_id_once() -> None:
    rows = _ROW.findall(CATALOG.read_text(encoding="utf-8"))
    assert len(rows) == len(set(rows)) >= 30
    assert {"H1", "H10", "T5", "D2", "B5", "A12", "S1", "S2"} <= set(rows)


def test_the_bundled_example_cites_only_explained_ids() -> None:
    unexplained = cited((ROOT / "probes.yaml").read_text(encoding="utf-8")) - explained()
    assert not unexplained, f"probes.yaml cites {sorted(unexplained)}, which {CATALOG.name} does not explain"


def test_the_docs_cite_only_explained_ids() -> None:
    for path in markdown_files():
        unexplained = cited(path.read_text(encoding="utf-8")) - explained()
        assert not unexplained, f"{path.relative_to(ROOT)} cites {sorted(unexplained)}, unexplained in {CATALOG.name}"
