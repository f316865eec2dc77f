"""The OpenAI-compatible ingress: /v1/chat/completions and /v1/models."""

from crossroads.ingress.openai.chat import chat_completions
from crossroads.ingress.openai.models import get_model, list_models, models_body

__all__ = ["chat_completions", "get_model", "list_models", "models_body"]
