"""Area 'visits': home visits to host families — pages, JSON API, worker jobs and demo data.

Services live in events/visits/ (households, rounds, requests, proposals, confirmations); the solver is
events/matching.py. See lifedesign/areas/__init__.py for what an area exports.
"""

from events.visits import confirmations
from lifedesign.areas.visits import api, demo, jobs, pages

try:  # follow-up surveys ask the host family of a confirmed visit too (when the feedback area is installed)
    from events.feedback.sending import register_extra_recipients
except ImportError:  # pragma: no cover - feedback area absent
    register_extra_recipients = None
if register_extra_recipients is not None:
    register_extra_recipients("host_family", confirmations.host_of_event)

ROUTES: list = [*api.ROUTES, *pages.ROUTES]
COMMANDS: list = []
JOBS: list = [*jobs.JOBS]
DEMO = demo.load
