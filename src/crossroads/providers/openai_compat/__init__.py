"""Adapter for any upstream that speaks OpenAI's Chat Completions API: DeepSeek, Moonshot, Z.ai,
MiniMax, DashScope compatible mode, Together, Fireworks, Groq, DeepInfra, OpenRouter, vLLM,
SGLang, Ollama, llama.cpp server. Requests and answers pass through as bytes where possible."""

from crossroads.providers.base import Provider, ProviderSpec
from crossroads.providers.openai_compat.adapter import OpenAICompatProvider


def create(spec: ProviderSpec) -> Provider:
    return OpenAICompatProvider(spec)


__all__ = ["OpenAICompatProvider", "create"]
