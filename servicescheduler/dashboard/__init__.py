"""Operator dashboard: server-rendered pages at `/` over the same functions the JSON API calls.

`dashboard.routes.router` serves the pages and their live fragments; `STATIC_DIR` holds the CSS,
the page script and the vendored htmx (no build step, no CDN).
"""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATE_DIR = Path(__file__).parent / "templates"
