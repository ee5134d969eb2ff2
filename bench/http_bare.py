"""The load benchmark's comparison server: the same framework, the same route, no idrs work.

``python -m bench.http_bare PORT BODY_JSON [WORKERS]`` serves ``GET
/api/v1/accounts/{tin}/{command}`` answering the JSON document in BODY_JSON (a real ENMOD
answer captured from idrs by bench_http) through the same stack the product's research
route uses: a synchronous FastAPI handler (run in the thread pool), a pydantic response
model of the same shape, the same query parameter, and uvicorn started the way ``idrs
serve`` starts it (``idrs.cli.setup.uvicorn_options`` and ``run_uvicorn``). What it leaves
out is exactly idrs' own work: the hardening and throttle middleware, the web mount, the
dependencies, authentication, the access decision, the audit append and the account read
and decryption.

Never part of the product; it lives in bench/ only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from pydantic import BaseModel

BODY_ENV = "IDRS_BENCH_BARE_BODY"


class ResearchOut(BaseModel):
    command: str
    data: Any
    masked: list[str]
    audit_index: int


def create() -> FastAPI:
    """The bare application (uvicorn factory; the answer's path comes from the environment)."""
    body = json.loads(Path(os.environ[BODY_ENV]).read_text())
    api = FastAPI(title="bare", openapi_url=None, docs_url=None, redoc_url=None)

    # async, like idrs's own research route: the same framework path, without the research
    @api.get("/api/v1/accounts/{tin}/{command}", response_model=ResearchOut)
    async def account_research(
        tin: str, command: str, case: str | None = Query(None, max_length=40)
    ) -> ResearchOut:
        return ResearchOut(**body)

    return api


def main() -> None:
    from idrs.cli.setup import run_uvicorn, uvicorn_options

    port, body = int(sys.argv[1]), sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.environ[BODY_ENV] = str(Path(body).resolve())
    options = uvicorn_options("127.0.0.1", port, access_log=False)
    run_uvicorn(create() if workers == 1 else "bench.http_bare:create", options, workers=workers)


if __name__ == "__main__":
    main()
