"""Area 'visits': home visits to host families — pages, JSON API, worker jobs and demo data.

Services live in events/visits/ (households, rounds, requests, proposals, confirmations); the solver is
events/matching.py. See lifedesign/areas/__init__.py for what an area exports.
"""

from lifedesign.areas.visits import api, demo, jobs, pages

ROUTES: list = [*api.ROUTES, *pages.ROUTES]
COMMANDS: list = []
JOBS: list = [*jobs.JOBS]
DEMO = demo.load
