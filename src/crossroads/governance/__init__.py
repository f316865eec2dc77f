"""Governance: who may call (API keys, teams), what they may spend (budgets, rate limits) and
which models and hosts may see their data (policy)."""
