"""Crossroads: one OpenAI- and Anthropic-compatible API for every open-weight model and host."""

__version__ = "0.1.0"

__all__ = ["__version__"]
