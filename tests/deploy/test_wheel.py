"""The wheel: `pip wheel` builds it, it installs into a fresh virtualenv, and the installed `probed`
runs from there (not from this checkout) with everything the package needs inside the wheel.

The fresh virtualenv sees this interpreter's site-packages through a .pth line so probed's
dependencies need no download; probed itself comes only from the wheel (a test checks that).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import ROOT, run, tool

TINY = """\
probes:
  - name: wheel-self
    type: http
    target: http://127.0.0.1:9470/-/healthy
    interval: 10s
"""


class Installed:
    def __init__(self, wheel: Path, venv: Path, workdir: Path) -> None:
        self.wheel, self.venv, self.workdir = wheel, venv, workdir
        self.config = workdir / "tiny.yaml"
        self.config.write_text(TINY)

    def probed(self, *args: str) -> tuple[int, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        result = run([str(self.venv / "bin" / "probed"), *args], cwd=self.workdir, env=env, timeout=60)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy: pip writes build/ and *.egg-info next to the sources.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "probed", src / "probed", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(dist), str(src)],
                timeout=180)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next(dist.glob("probed-*.whl"))

    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    asked = run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    purelib = Path(asked.stdout.strip())
    pip_install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                   "--no-deps", "--no-index", str(wheel)]
    done = run(pip_install, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # Only now the dependencies (pip would take a probed it sees there as already installed); the
    # virtualenv's own site-packages stay first on sys.path, so `import probed` finds the wheel's.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_probed_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    yield Installed(wheel, venv, tmp)


def test_probed_comes_from_the_wheel_not_the_checkout(installed: Installed) -> None:
    python = installed.venv / "bin" / "python"
    result = run([str(python), "-c", "import probed; print(probed.__file__)"], cwd=installed.workdir)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed.venv), result.stdout


def test_version(installed: Installed) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    code, out = installed.probed("--version")
    assert (code, out.strip()) == (0, f"probed {version}")


def test_check_a_config(installed: Installed) -> None:
    code, out = installed.probed("check", "--config", str(installed.config))
    assert code == 0, out
    assert "OK, 1 probes" in out


def test_check_rejects_a_broken_config(installed: Installed) -> None:
    broken = installed.workdir / "broken.yaml"
    broken.write_text("probes:\n  - name: x\n    type: no-such-type\n    target: http://127.0.0.1:1/\n")
    code, out = installed.probed("check", "--config", str(broken))
    assert code == 2, out


def test_rules_from_the_installed_wheel_pass_promtool(installed: Installed) -> None:
    promtool = tool("promtool", "apt-get install prometheus")
    code, out = installed.probed("rules", "--config", str(installed.config))
    assert code == 0, out
    rules = installed.workdir / "rules.yaml"
    rules.write_text(out)
    assert yaml.safe_load(out)["groups"]
    checked = run([promtool, "check", "rules", str(rules)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_wheel_carries_every_file_of_the_package(installed: Installed) -> None:
    """Non-Python files under probed/ (templates, rule or dashboard data) are easy to leave out."""
    copied = installed.workdir / "src"
    src = {p.relative_to(copied).as_posix() for p in (copied / "probed").rglob("*") if p.is_file()}
    with zipfile.ZipFile(installed.wheel) as whl:
        inside = set(whl.namelist())
        entry_points = next(n for n in inside if n.endswith(".dist-info/entry_points.txt"))
        assert "probed = probed.cli:main" in whl.read(entry_points).decode()
    missing = sorted(src - inside)
    assert not missing, f"files under probed/ that the wheel leaves out: {missing}"
