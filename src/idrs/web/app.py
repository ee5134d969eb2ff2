"""``mount(api, app)``: the hook ``idrs.api.app.create_app`` calls when this module exists.

Adds the page router at ``/`` and the static files at ``/static``. (The security headers,
request ids and body limit are ``idrs.api.middleware.install``, wired by create_app.)
"""

from __future__ import annotations

from fastapi import FastAPI

from idrs.context import App


def mount(api: FastAPI, app: App) -> None:
    """Mount the web interface on ``api`` (idempotent)."""
    from idrs.web import admin_pages, analysis_pages, disclosure_pages, grant_pages, report_pages
    from idrs.web.routes import mount_static, router

    if getattr(api.state, "idrs_web_mounted", False):
        return
    api.include_router(router)
    api.include_router(grant_pages.router)
    api.include_router(report_pages.router)
    api.include_router(admin_pages.router)
    api.include_router(disclosure_pages.router)
    api.include_router(analysis_pages.router)
    mount_static(api)
    api.state.idrs_web_mounted = True
