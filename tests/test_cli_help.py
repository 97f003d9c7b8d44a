"""The CLI a newcomer meets: --version, --help at 80 columns, usage lines that name arguments."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import localize

COMMANDS = ["run", "estimate", "prompt", "report", "approve", "deliver", "review", "merge", "models", "memory"]


def localize_at_80_columns(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "localize", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_version_prints_the_package_version() -> None:
    shown = localize_at_80_columns("--version")
    assert shown.returncode == 0
    assert shown.stdout == f"localize {localize.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", localize.__version__)


def test_help_lists_every_command_with_a_whole_one_line_summary() -> None:
    shown = localize_at_80_columns("--help")
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    listed = {line.split()[0]: line for line in lines[lines.index("Commands:") + 1 :] if line.strip()}
    assert list(listed) == COMMANDS
    for line in listed.values():
        assert len(line) <= 80 and not line.rstrip().endswith(("...", "…")), line
        assert line.rstrip().endswith("."), line  # a whole sentence, not one Click cut short
    assert "--version" in shown.stdout


@pytest.mark.parametrize(
    "command,usage",
    [
        ("run", "CATALOG"),
        ("estimate", "CATALOG"),
        ("prompt", "CATALOG"),
        ("report", "OUT"),
        ("review", "OUT"),
        ("merge", "OUT..."),
    ],
)
def test_usage_line_names_the_argument_in_capitals(command: str, usage: str) -> None:
    shown = localize_at_80_columns(command, "--help")
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[0] == f"Usage: localize {command} [OPTIONS] {usage}"
