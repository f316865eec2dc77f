"""Who is calling: the principal a request runs as, with the policies and limits that apply."""

from __future__ import annotations

from dataclasses import dataclass

from crossroads.governance.model import Limits
from crossroads.governance.policy import Policy


@dataclass(frozen=True, slots=True)
class Principal:
    """`scopes` are the limit holders in force, e.g. (("key:AbC123xyz0", limits),
    ("team:research", limits)); each is checked separately and all must pass."""

    key_id: str | None = None
    team_id: str | None = None
    policies: tuple[Policy, ...] = ()
    scopes: tuple[tuple[str, Limits], ...] = ()
    admin: bool = False
    can_eval: bool = False
    """May mark its requests as eval traffic (`x-crossroads-eval`): the admin key, a key with
    the eval permission, and the anonymous principal of open mode (one user, nobody to hide
    spend from)."""

    @property
    def label(self) -> str:
        return f"key '{self.key_id}'" if self.key_id else ("admin" if self.admin else "anonymous")
