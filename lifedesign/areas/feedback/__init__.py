"""Area 'feedback': pages, API, CLI commands, worker jobs and demo data (see lifedesign/areas/__init__.py)."""

from events import feedback
from events.feedback import links
from events.feedback.sending import run_feedback_jobs
from lifedesign.areas.feedback.api import API_ROUTES
from lifedesign.areas.feedback.demo import load as load_demo
from lifedesign.areas.feedback.pages import PAGE_ROUTES
from lifedesign.settings import get_settings

# Personal survey links are derived from the server's secret (never stored in the database).
links.configure_secret_source(lambda: get_settings().secret_key)
feedback.install()

ROUTES: list = [*PAGE_ROUTES, *API_ROUTES]
COMMANDS: list = []
JOBS: list = [run_feedback_jobs]
DEMO = load_demo
