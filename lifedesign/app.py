"""create_app(): the Litestar application with every area's routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from events.db import close_connections, engine
from lifedesign import areas, worker
from lifedesign.access_log import AccessLog
from lifedesign.bootstrap import configure_domain
from lifedesign.errors import EXCEPTION_HANDLERS
from lifedesign.limits import InputLimitsMiddleware
from lifedesign.openapi import TruthfulJsonRenderPlugin
from lifedesign.routes import account, admin, api_core, consent, privacy
from lifedesign.security import IdentifyMiddleware, security_headers
from lifedesign.settings import Settings, get_settings

ROUTE_MODULES = [account, admin, api_core, consent, privacy]


def create_app(
    settings: Settings | None = None, *, run_worker: bool | None = None, pool: bool = False, migrate: bool = False
) -> Litestar:
    settings = settings or get_settings()
    configure_domain(settings)
    start_worker = settings.run_worker_in_serve if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if migrate:
            from lifedesign.migrate import migrate as apply_migrations

            await apply_migrations(settings)
        db = engine()
        if pool and db.engine_type == "postgres":
            await db.start_connection_pool(min_size=2, max_size=settings.db_pool_size)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_forever(stop)) if start_worker else None
        try:
            yield
        finally:
            stop.set()
            if task:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            if pool or db.engine_type == "sqlite":  # this process's connections (or the pool it started)
                await close_connections()

    area_modules = areas.INSTALLED
    worker.PERIODIC_JOBS[:] = worker.jobs_of(area_modules)
    route_handlers = [handler for module in [*ROUTE_MODULES, *area_modules] for handler in module.ROUTES]
    app = Litestar(
        route_handlers=route_handlers,
        middleware=[InputLimitsMiddleware(), IdentifyMiddleware()],
        before_send=[security_headers],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="lifedesign API", version="1", path="/schema", render_plugins=[TruthfulJsonRenderPlugin()],
            description="金沢区 ライフデザイン・保育交流 — JSON API. Errors are {status, code, message}.",
            use_handler_docstrings=True,
        ),
        request_max_body_size=10 * 1024 * 1024,
        debug=False,
        logging_config=None,
    )
    app.asgi_handler = AccessLog(app.asgi_handler)  # outermost: unknown routes and errors are logged too
    return app


logging.getLogger("lifedesign").setLevel(logging.INFO)
