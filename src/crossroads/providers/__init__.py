"""Provider adapters: one package per upstream wire format, each translating between its wire
types and the neutral schema. Adapters are found through the `crossroads.providers` entry-point
group, the same path a third-party adapter takes (see `registry.py`)."""
