"""Ingresses: the API shapes clients speak (OpenAI today), converted to and from the neutral
schema, plus what every ingress shares (body reading, the per-request exchange record)."""
