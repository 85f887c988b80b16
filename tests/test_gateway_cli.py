"""Command-line niceties: `learnflow --version` and `python -m gateway --help`."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_learnflow_version_prints_the_installed_version() -> None:
    result = _run("-m", "learnflow", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"learnflow {version('learnflow')}"


def test_gateway_help_prints_usage_and_starts_nothing() -> None:
    # A gateway that started would block (uvicorn) or fail on its backend; --help must do
    # neither, and must not even import the server stack.
    result = _run(
        "-c",
        "import sys, runpy; sys.argv = ['gateway', '--help']\n"
        "try:\n    runpy.run_module('gateway', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "    assert 'uvicorn' not in sys.modules and 'gateway.app' not in sys.modules\n"
        "    raise\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m gateway")
    assert "LEARNFLOW_GATEWAY_GRPC_TARGET" in result.stdout
    assert "/docs" in result.stdout


def test_gateway_rejects_unknown_arguments_without_starting() -> None:
    result = _run("-m", "gateway", "--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
