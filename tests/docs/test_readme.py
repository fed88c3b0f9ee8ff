"""The README: short, and it opens with the two commands that work on a fresh clone."""

from __future__ import annotations

import re

from .pages import README, ROOT

OPENING = """\
# probed

```sh
./scripts/probed demo    # first run makes ./.venv (PEP 668-safe), then probes 7 local demo targets; open http://127.0.0.1:9470/
./scripts/test           # the whole suite: installs what it needs, then ruff, mypy, mkdocs, pytest
```
"""


def test_the_readme_opens_with_the_demo_and_the_test_command() -> None:
    assert README.read_text(encoding="utf-8").startswith(OPENING)


def test_ci_runs_the_readme_test_command() -> None:
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_stays_short() -> None:
    size = len(README.read_bytes())
    assert size <= 15_000, f"README.md is {size} bytes: move reference material into docs/"


def test_the_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
