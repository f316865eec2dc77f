"""Architecture rules that import-linter cannot express: only `config` reads the environment,
and modules stay small enough to read."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "crossroads"
ENVIRON = re.compile(r"\bos\.environ\b|\bos\.getenv\b|\bgetenv\(")


def python_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_only_config_reads_the_environment() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in python_files()
        if ENVIRON.search(path.read_text()) and path.relative_to(SRC).parts[0] != "config"
    ]
    assert offenders == []


def test_no_grab_bag_module_names() -> None:
    banned = {"utils.py", "helpers.py", "common.py", "misc.py"}
    assert [str(p) for p in python_files() if p.name in banned] == []


def test_no_module_past_800_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in python_files()
        if (n := len(p.read_text().splitlines())) > 800
    }
    assert long == {}


def test_every_module_opens_with_a_docstring() -> None:
    missing = [
        str(p.relative_to(SRC))
        for p in python_files()
        if p.read_text().strip() and not p.read_text().lstrip().startswith('"""')
    ]
    assert missing == []
