"""Area 'invites': pages, API, CLI commands, worker jobs and demo data (see lifedesign/areas/__init__.py).

Installing it connects calendar invites and reminders to the kernel's signals (events.invites.install) and
adds the calendar-feed block to the profile page.
"""

from events import invites
from events.invites.invites import send_missing_invites
from lifedesign.areas.invites import routes

invites.install()
routes.register_sections()

ROUTES: list = list(routes.ROUTES)
COMMANDS: list = []
JOBS: list = [send_missing_invites]  # a confirmed place whose mail carried no invite gets one of its own
DEMO = None
