"""Loads the provider profiles shipped in `data/*.yaml`, checks them, and picks the profile of a
provider: the one its options name, else the one serving its catalog host, else `generic`.

Loading reads a dozen small files; adapters do it once, when they are created at start."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

import msgspec
import msgspec.yaml

from crossroads.errors import ConfigError
from crossroads.providers.profiles.model import Profile

__all__ = ["GENERIC", "Profiles", "load_builtin", "load_documents"]

GENERIC = "generic"
"""The permissive profile for hosts nobody described (a self-hosted server, a new host)."""

_DATA_PACKAGE = "crossroads.providers.profiles"
_ID = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PARAM = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Profiles:
    """Every known profile by id, and the profile id of every catalog host that has one."""

    by_id: Mapping[str, Profile]
    by_host: Mapping[str, str]

    def get(self, profile_id: str) -> Profile:
        """Raises ConfigError naming the known profiles when `profile_id` is not one of them."""
        profile = self.by_id.get(profile_id)
        if profile is None:
            known = ", ".join(sorted(self.by_id))
            raise ConfigError(f"unknown provider profile {profile_id!r}; known profiles: {known}")
        return profile

    def for_provider(self, *, explicit: str | None, catalog_host: str | None) -> Profile:
        """The profile named by the provider's `profile` option, else the one serving its catalog
        host, else `generic`. Raises ConfigError for an unknown explicit name."""
        if explicit is not None:
            return self.get(explicit)
        if catalog_host is not None and catalog_host in self.by_host:
            return self.by_id[self.by_host[catalog_host]]
        return self.by_id[GENERIC]


def load_builtin() -> Profiles:
    """The profiles shipped with the gateway. Raises ConfigError if one of them is invalid (a
    packaging mistake, caught by the unit tests)."""
    folder = resources.files(_DATA_PACKAGE) / "data"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    return load_documents((f"profiles/data/{f.name}", f.read_bytes()) for f in files)


def load_documents(documents: Iterable[tuple[str, bytes]]) -> Profiles:
    """Decodes and checks (source name, YAML bytes) documents, one profile each, whose file stem
    must be the profile's id. Raises ConfigError naming the file and the problem."""
    by_id: dict[str, Profile] = {}
    by_host: dict[str, str] = {}
    for source, text in documents:
        profile = _decode(source, text)
        stem = source.rsplit("/", 1)[-1].removesuffix(".yaml")
        if profile.id != stem:
            raise ConfigError(f"{source}: id {profile.id!r} must match the file name {stem!r}")
        if profile.id in by_id:
            raise ConfigError(f"{source}: profile {profile.id!r} is defined twice")
        _check(source, profile)
        for host in profile.hosts:
            if host in by_host:
                raise ConfigError(
                    f"{source}: host {host!r} is already served by profile {by_host[host]!r}"
                )
            by_host[host] = profile.id
        by_id[profile.id] = profile
    if GENERIC not in by_id:
        raise ConfigError(f"the {GENERIC!r} provider profile is missing")
    return Profiles(MappingProxyType(by_id), MappingProxyType(by_host))


def _decode(source: str, text: bytes) -> Profile:
    try:
        return msgspec.yaml.decode(text, type=Profile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: invalid provider profile: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None


def _check(source: str, profile: Profile) -> None:
    """The cross-field rules msgspec cannot express."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{source}: profile {profile.id!r}: {problem}")

    if not _ID.fullmatch(profile.id):
        raise fail("an id is lower-case letters, digits, '-' and '_'")
    if not profile.docs or not all(url.startswith("https://") for url in profile.docs):
        raise fail("docs must list the https:// sources of its facts")
    for rule in (*profile.refuses, *profile.ignores):
        if not rule.params or not all(_PARAM.fullmatch(p) for p in rule.params):
            raise fail(f"rule {rule.why!r}: params must be request field names")
        if not rule.why.strip():
            raise fail(f"rule for {', '.join(rule.params)}: 'why' must say why")
    refused = {p for rule in profile.refuses for p in rule.params}
    for source_name, target in profile.renames.items():
        if not (_PARAM.fullmatch(source_name) and _PARAM.fullmatch(target)):
            raise fail(f"renames: {source_name!r} -> {target!r} are not field names")
        if source_name == target or source_name in profile.renames.values():
            raise fail(f"renames: {source_name!r} -> {target!r} would loop")
        if source_name in refused or target in refused:
            raise fail(f"renames: {source_name!r} -> {target!r} involves a refused parameter")
