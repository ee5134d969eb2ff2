"""Serve idrs for the browser tests: ``python -m tests.browser.serve_app PORT``.

The same application ``idrs serve`` runs (create_app mounts the web interface), plus the
hardening middleware (installed here until create_app wires it; installing is idempotent).
Settings come from IDRS_DATABASE_URL / IDRS_HOME set by the fixture.
"""

from __future__ import annotations

import sys

import uvicorn

from idrs.api import middleware
from idrs.api.app import create_app
from idrs.context import App


def main() -> None:
    port = int(sys.argv[1])
    api = create_app(App.open())
    middleware.install(api)
    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
