"""Maps a JSON path such as `$.models[2].provider` to its line in a YAML document, so config
errors can say where the mistake is."""

from __future__ import annotations

import re

import yaml

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """`$.models[2].provider` -> ["models", 2, "provider"]."""
    return [int(index) if index else key for key, index in _STEP.findall(path.removeprefix("$"))]


def line_of(node: yaml.Node | None, path: list[str | int]) -> int | None:
    """The 1-based line of the deepest node along `path` in a composed YAML tree."""
    line = node.start_mark.line + 1 if node is not None else None
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == step:
                    node = value
                    line = key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                return line
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line
