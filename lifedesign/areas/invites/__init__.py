"""Area 'invites': pages, API, CLI commands, worker jobs and demo data (see lifedesign/areas/__init__.py).

Importing it wires calendar invites and reminders into the domain signals (events.invites.install) and
adds the calendar-feed block to the profile page.
"""

from events.invites import install
from lifedesign.areas.invites import jobs, routes

install()
routes.register_sections()

ROUTES: list = list(routes.ROUTES)
COMMANDS: list = []
JOBS: list = [jobs.send_missing_invites]
DEMO = None
