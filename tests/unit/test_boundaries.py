"""Architecture rules that import-linter cannot express: only `config` reads the environment,
and modules stay small enough to read; and that the import-linter contracts cover every
module and every registered provider."""

from __future__ import annotations

import re
import tomllib
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


def _importlinter_contracts() -> list[dict[str, object]]:
    config = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _contract(name: str) -> dict[str, object]:
    return next(c for c in _importlinter_contracts() if c["name"] == name)


def test_every_top_level_module_has_a_layer() -> None:
    """A new top-level module outside the layers contract would be checked by nothing."""
    layers = _contract("the layers, outermost first")["layers"]
    assert isinstance(layers, list)
    placed = {name.strip() for layer in layers for name in str(layer).split("|")}
    present = {
        p.stem if p.is_file() else p.name
        for p in SRC.iterdir()
        if (p.suffix == ".py" and p.stem not in {"__init__", "__main__"})
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert sorted(present - placed) == []


def test_provider_independence_covers_every_registered_provider() -> None:
    """The independence list is derived from the providers registered as entry points, so a new
    provider cannot be left out of it."""
    config = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())
    registered = config["project"]["entry-points"]["crossroads.providers"].values()
    packages = {str(target).split(":", 1)[0] for target in registered}
    listed = _contract("a provider never imports another provider")["modules"]
    assert isinstance(listed, list)
    assert sorted(packages) == sorted(listed)
