"""Shared helpers for tests that drive tests/fixtures/services/scripted.py: a user-defined fault."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from faults.base import Injection, Recipe, describe

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def post_script(base_url: str, script: dict[str, Any]) -> None:
    request = urllib.request.Request(
        base_url + "/admin/script", data=json.dumps(script).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


@dataclass(frozen=True)
class Scripted:
    """A user-defined fault kind: tells the scripted service how to fail, then heals it."""

    kind: ClassVar[str] = "scripted"
    target: str
    script: str  # JSON, so the dataclass stays frozen and hashable

    def params(self) -> dict[str, Any]:
        return json.loads(self.script)

    def plan(self, env: Any) -> Injection:
        env.catalog.service(self.target)
        base = env.endpoint(self.target)
        return Injection(
            description=describe(self),
            recipe=Recipe("none"),
            apply=lambda: post_script(base, self.params()),
            revert=lambda: post_script(base, {}),
        )


def scripted(target: str, **script: Any) -> Scripted:
    return Scripted(target, json.dumps(script, sort_keys=True))
