"""Area 'seminars': pages, JSON API, CLI commands, worker jobs and demo data (see lifedesign/areas/__init__.py).

Services live in events/seminars/ (schedule, registration, draws, exports, notices).
"""

from events import seminars
from events.seminars import draws
from lifedesign.areas.seminars import api, cli, demo
from lifedesign.areas.seminars.pages import PAGE_ROUTES

seminars.install()

ROUTES: list = [*api.ROUTES, *PAGE_ROUTES]
COMMANDS: list = [*cli.COMMANDS]
JOBS: list = [draws.draw_due_lotteries]  # lotteries are drawn when their window closes
DEMO = demo.load
