"""A pytest plugin for tests/test_tiers.py: after collection, writes every test's markers, parameters
and the source of its function and of each fixture it uses (transitively) as JSON to $TIERS_PROBE_OUT.

Loaded only with `-p tests.infra.tiers_probe` in a separate pytest process, so the suite is collected
exactly as `make test` collects it, conftest hooks included.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import pytest


def _source(function: object) -> str:
    try:
        return inspect.getsource(function)  # type: ignore[arg-type]
    except (OSError, TypeError):  # built-in or generated: nothing of ours to scan
        return ""


def pytest_collection_finish(session: pytest.Session) -> None:
    """Dumps what test_tiers.py needs to know about each collected test."""
    fixtures: dict[str, str] = {}
    items = []
    for item in session.items:
        assert isinstance(item, pytest.Function)
        used = []
        # _fixtureinfo is pytest's own record of the fixtures the test resolves (closest definition last).
        for name, definitions in item._fixtureinfo.name2fixturedefs.items():
            function = definitions[-1].func
            key = f"{name} ({getattr(function, '__module__', '?')})"
            fixtures.setdefault(key, _source(function))
            used.append({"name": name, "key": key})
        callspec = getattr(item, "callspec", None)
        items.append(
            {
                "nodeid": item.nodeid,
                "markers": sorted({marker.name for marker in item.iter_markers()}),
                "params": {name: str(value) for name, value in (callspec.params if callspec else {}).items()},
                "source": _source(item.function),
                "fixtures": used,
            }
        )
    Path(os.environ["TIERS_PROBE_OUT"]).write_text(json.dumps({"items": items, "fixtures": fixtures}))
