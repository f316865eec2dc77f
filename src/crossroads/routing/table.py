"""The routing table: every name a client may ask for, mapped to its candidate deployments.

Naming scheme (documented in README.md):
- `maker/model` (a catalog id, e.g. `deepseek/deepseek-v3.2`): every deployment of that model,
  whichever host serves it;
- `maker/model@provider` (e.g. `moonshotai/kimi-k2-0905@together`): that model pinned to one
  provider;
- a name declared in the config's `models:` list (e.g. `local/smollm2-135m`, `kimi-k2`): the
  deployments declared under it, in the order written;
- an alias from the config's `aliases:` map: the concatenation of its targets, in order.
Built once at start; lookups are one dict access.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crossroads.errors import ConfigError, ModelNotFoundError
from crossroads.routing.deployment import Deployment
from crossroads.routing.strategy import Strategy


@dataclass(frozen=True, slots=True)
class Alias:
    targets: tuple[str, ...]
    strategy: Strategy | None = None  # None: the gateway's default strategy


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    kind: str  # "model" (config name), "catalog", "pinned" or "alias"
    deployments: tuple[Deployment, ...]
    strategy: Strategy | None = None


class RoutingTable:
    def __init__(self, deployments: Sequence[Deployment], aliases: Mapping[str, Alias]) -> None:
        """Raises ConfigError for an alias naming an unknown target, a cycle, or an alias
        that shadows a model name."""
        routes: dict[str, tuple[str, list[Deployment]]] = {}

        def add(name: str, kind: str, dep: Deployment) -> None:
            entry = routes.setdefault(name, (kind, []))
            if all(d.id != dep.id for d in entry[1]):
                entry[1].append(dep)

        for dep in deployments:
            add(dep.name, "model", dep)
        declared = set(routes)
        for dep in deployments:
            # A name declared in the config wins over the catalog id of the same spelling.
            if dep.catalog_id and dep.catalog_id not in declared:
                add(dep.catalog_id, "catalog", dep)
            add(f"{dep.catalog_id or dep.name}@{dep.provider}", "pinned", dep)

        for alias in aliases:
            if alias in routes:
                raise ConfigError(
                    f"aliases.{alias}: the alias has the same name as a served model; "
                    "rename one of them"
                )
        targets = {name: alias.targets for name, alias in aliases.items()}
        for alias in aliases:
            deps = self._expand(alias, targets, routes, ())
            routes[alias] = ("alias", deps)
        self._routes = {
            name: Route(
                name,
                kind,
                tuple(deps),
                aliases[name].strategy if kind == "alias" else None,
            )
            for name, (kind, deps) in routes.items()
        }

    @staticmethod
    def _expand(
        name: str,
        aliases: Mapping[str, Sequence[str]],
        routes: Mapping[str, tuple[str, list[Deployment]]],
        seen: tuple[str, ...],
    ) -> list[Deployment]:
        if name in seen:
            raise ConfigError(f"aliases: cycle through {' -> '.join((*seen, name))}")
        if name not in aliases:
            if name not in routes:
                raise ConfigError(
                    f"aliases.{seen[-1]}: unknown target {name!r} (not a served model, "
                    "catalog model with a provider, pinned name or alias)"
                )
            return list(routes[name][1])
        out: list[Deployment] = []
        for target in aliases[name]:
            for dep in RoutingTable._expand(target, aliases, routes, (*seen, name)):
                if all(d.id != dep.id for d in out):
                    out.append(dep)
        return out

    def resolve(self, name: str) -> Route:
        """The route for `name`; raises ModelNotFoundError (404) when nothing serves it."""
        route = self._routes.get(name)
        if route is None:
            raise ModelNotFoundError(name)
        return route

    def get(self, name: str) -> Route | None:
        return self._routes.get(name)

    def routes(self) -> list[Route]:
        return sorted(self._routes.values(), key=lambda r: r.name)
