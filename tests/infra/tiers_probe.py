"""A pytest plugin for tests/test_tiers.py: records, after collection, every test's markers,
parameters and the source of its function and of each fixture it uses (transitively).

test_tiers.py passes it to a nested `pytest.main(["--collect-only", ...])`, so the suite is
collected exactly as `make test` collects it, conftest hooks included. In the same process the
test modules are already imported, which keeps the collection to about a second.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import pytest


def _source(function: object) -> str:
    try:
        return inspect.getsource(function)  # type: ignore[arg-type]
    except (OSError, TypeError):  # built-in or generated: nothing of ours to scan
        return ""


@dataclass
class TiersProbe:
    """Collects `items` (one dict per test) and `fixtures` (fixture key -> source)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    fixtures: dict[str, str] = field(default_factory=dict)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Records what test_tiers.py needs to know about each collected test."""
        for item in session.items:
            assert isinstance(item, pytest.Function)
            used = []
            # _fixtureinfo is pytest's own record of the fixtures the test resolves (closest definition last).
            for name, definitions in item._fixtureinfo.name2fixturedefs.items():
                function = definitions[-1].func
                key = f"{name} ({getattr(function, '__module__', '?')})"
                self.fixtures.setdefault(key, _source(function))
                used.append({"name": name, "key": key})
            callspec = getattr(item, "callspec", None)
            self.items.append(
                {
                    "nodeid": item.nodeid,
                    "markers": sorted({marker.name for marker in item.iter_markers()}),
                    "params": {name: str(value) for name, value in (callspec.params if callspec else {}).items()},
                    "source": _source(item.function),
                    "fixtures": used,
                }
            )
