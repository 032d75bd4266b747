"""Area 'seminars': JSON API, CLI commands, worker jobs and demo data (see lifedesign/areas/__init__.py).

Services live in events/seminars/ (schedule, registration, consent, draws, exports); the HTML pages are
added to ROUTES by the pages module of this folder.
"""

from lifedesign.areas.seminars import api, cli, demo, jobs

ROUTES: list = [*api.ROUTES]
from lifedesign.areas.seminars.pages import PAGE_ROUTES; ROUTES += PAGE_ROUTES  # noqa: E402, E702, I001
COMMANDS: list = [*cli.COMMANDS]
JOBS: list = [*jobs.JOBS]
DEMO = demo.load
