"""The Anthropic Messages ingress: /v1/messages and /v1/messages/count_tokens, translating
Anthropic's request, response and stream shapes to and from the neutral (OpenAI) format."""

from crossroads.ingress.anthropic.handler import count_tokens, messages

__all__ = ["count_tokens", "messages"]
