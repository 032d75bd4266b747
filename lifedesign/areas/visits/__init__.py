"""Area 'visits': home visits to host families — pages, JSON API, worker jobs and demo data.

Services live in events/visits/ (households, rounds, requests, proposals, confirmations); the solver is
events/matching.py. See lifedesign/areas/__init__.py for what an area exports.
"""

from events import visits
from events.visits import households
from lifedesign.areas.visits import api, demo, pages

visits.install()

ROUTES: list = [*api.ROUTES, *pages.ROUTES]
COMMANDS: list = []
# A visit whose household's vetting no longer covers its day goes on hold (the safeguarding invariant);
# guardians' status links go with the retention purge (category visit_guardian_links).
JOBS: list = [households.enforce_vetting]
DEMO = demo.load
