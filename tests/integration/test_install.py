"""A new user's install: build the wheel, install it in a fresh venv, run `sslnotify check`.

The venv gets only what the wheel declares, from a wheelhouse of the pinned versions in
build/wheelhouse (filled from PyPI once, then reused offline); it runs from a temporary
directory, so the repository is not on its path.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.certs import make_pki

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "build" / "wheelhouse"
# What the default install needs, at the versions requirements.txt pins.
CLI_PACKAGES = ("cryptography", "idna", "requests", "pyOpenSSL")
NOT_COPIED = shutil.ignore_patterns(
    ".venv*", "build", "dist", ".git", "node_modules", "*.egg-info", "__pycache__", ".sslnotify",
    ".terraform", "test-artifacts", ".pytest_cache", ".ruff_cache",
)  # fmt: skip


def _pins() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins = [line.strip() for line in lines if line.split("==")[0].strip() in CLI_PACKAGES]
    assert len(pins) == len(CLI_PACKAGES), pins
    return pins


def _pip(*args: str, python: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    if python:
        command += ["--python", python]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, check=False, timeout=300
    )


def _wheelhouse() -> Path:
    """Return the wheelhouse of the CLI's pinned dependencies, downloading them the first time."""
    # Wheel names are normalised (PEP 491: lower case, "_" for "-"): pyOpenSSL is pyopenssl.
    wanted = [pin.lower().replace("-", "_").replace("==", "-") for pin in _pins()]
    present = [path.name.lower() for path in WHEELHOUSE.glob("*.whl")]
    if not all(any(name.startswith(f"{want}-") for name in present) for want in wanted):
        answer = _pip("download", "--only-binary=:all:", "-d", str(WHEELHOUSE), *_pins())
        if answer.returncode != 0:
            pytest.skip(f"cannot fill {WHEELHOUSE} from PyPI: {answer.stderr.strip()[-300:]}")
    return WHEELHOUSE


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the tree and install it alone in a new venv."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    built = _pip("wheel", "--no-deps", *isolation, "-w", str(work / "dist"), str(source))
    assert built.returncode == 0, built.stderr
    [wheel] = (work / "dist").glob("sslnotify-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    answer = _pip(
        "install", "--no-index", "--find-links", str(_wheelhouse()), str(wheel), python=python
    )
    assert answer.returncode == 0, answer.stderr
    return venv


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        [str(venv / "bin" / "sslnotify"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_installed_command_checks_a_loopback_server(installed, tls_server, tmp_path):
    pki = make_pki(datetime.now(UTC))
    server = tls_server([pki.leaf(dns=["localhost"], ips=["127.0.0.1"]), pki.intermediate])
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root.pem)
    answer = _run(installed, tmp_path, "check", server.address, "--cafile", str(root))
    assert answer.returncode == 0, answer.stderr
    assert re.fullmatch(rf"{re.escape(server.address)}  OK  59 days left .*\n", answer.stdout)
    assert answer.stderr == ""
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import chalicelib; print(chalicelib.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages" in where and str(ROOT) not in where


def test_version_and_the_hint_for_a_command_without_its_extra(installed, tmp_path):
    version = _run(installed, tmp_path, "--version")
    assert re.fullmatch(r"sslnotify \d+\.\d+\.\d+\n", version.stdout)
    for command, extra in (("restore", "aws"), ("local", "local"), ("trigger", "local")):
        answer = _run(installed, tmp_path, command, *(["backup.json"] * (command == "restore")))
        assert answer.returncode == 3
        lines = answer.stderr.splitlines()
        assert len(lines) == 1 and lines[0].endswith(f"pip install 'sslnotify[{extra}]'"), lines
        assert "Traceback" not in answer.stderr
