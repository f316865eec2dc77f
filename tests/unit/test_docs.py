"""The docs stay true: the README's full configuration example and examples/crossroads.yaml
load, and every command the README's command table names exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossroads.cli.main import parser
from crossroads.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    name: "x" * 24
    for name in (
        "DEEPSEEK_API_KEY",
        "TOGETHER_API_KEY",
        "ZAI_API_KEY",
        "CROSSROADS_ADMIN_KEY",
        "CROSSROADS_POSTGRES_URL",
        "CROSSROADS_REDIS_URL",
    )
}


def readme_config(tmp_path: Path) -> Path:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Configuration", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme.yaml"
    path.write_text(block)
    return path


def test_readme_configuration_example_loads(tmp_path: Path) -> None:
    settings = load_settings(readme_config(tmp_path), environ=ENV)
    assert {d.name for d in settings.deployments} >= {"deepseek-v4-pro", "kimi-k2"}


def test_examples_config_matches_the_readme(tmp_path: Path) -> None:
    example = (ROOT / "examples" / "crossroads.yaml").read_text()
    body = "\n".join(line for line in example.splitlines() if not line.startswith("# "))
    assert body.strip() == readme_config(tmp_path).read_text().strip()
    load_settings(ROOT / "examples" / "crossroads.yaml", environ=ENV)


def test_readme_commands_exist() -> None:
    text = (ROOT / "README.md").read_text()
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in (
        "serve",
        "models",
        "usage",
        "status",
        "report",
        "whatif",
        "catalog",
        "eval",
        "keys",
        "teams",
        "route",
        "config",
        "mock-upstream",
    ):
        assert f"crossroads {name}" in text
        assert name in commands


def test_mock_upstream_takes_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`crossroads mock-upstream [--port P]`, as the README's command table writes it: the
    options go to the mock (argparse alone refused a leading `--port`)."""
    from crossroads.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["mock-upstream", "--port", "9100", "--help"])
    assert done.value.code == 0
    assert "--port PORT" in capsys.readouterr().out
