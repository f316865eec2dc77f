"""Evidence before a switch: capture of sampled traffic, replay and shadow traffic against
candidate models, deterministic checks and a pairwise LLM judge, and the switch report."""
