"""The model catalog: who made each model (origin, licence), who serves it (host, jurisdiction,
base URLs) and at what list price. Shipped as YAML in `data/`, overridable from config."""

from crossroads.catalog.loader import (
    CONFIG_SOURCE,
    ISO_3166_ALPHA2,
    LOCAL_HOST_ID,
    LOCAL_JURISDICTION,
    Catalog,
    load_builtin,
)
from crossroads.catalog.model import (
    Capabilities,
    Host,
    Maker,
    Model,
    Offering,
    Prices,
    PriceTier,
)

__all__ = [
    "CONFIG_SOURCE",
    "ISO_3166_ALPHA2",
    "LOCAL_HOST_ID",
    "LOCAL_JURISDICTION",
    "Capabilities",
    "Catalog",
    "Host",
    "Maker",
    "Model",
    "Offering",
    "PriceTier",
    "Prices",
    "load_builtin",
]
