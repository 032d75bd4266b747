"""Piccolo's configuration: the engine comes from LIFEDESIGN_DATABASE_URL (see settings)."""

from piccolo.conf.apps import AppRegistry

from events.db import make_engine
from lifedesign.settings import get_settings

_settings = get_settings()
DB = make_engine(_settings.database_url, connect_timeout=_settings.db_timeout,
                 statement_timeout=_settings.db_statement_timeout)

APP_REGISTRY = AppRegistry(apps=[
    "events.core.piccolo_app",
    "events.seminars.piccolo_app",
    "events.invites.piccolo_app",
    "events.visits.piccolo_app",
    "events.exchanges.piccolo_app",
    "events.feedback.piccolo_app",
])
