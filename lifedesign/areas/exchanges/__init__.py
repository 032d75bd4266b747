"""Area 'exchanges': pages, API, CLI commands, worker jobs and demo data (see lifedesign/areas/__init__.py)."""

from events import exchanges
from lifedesign.areas.exchanges import api, cli, demo, pages
from lifedesign.areas.exchanges.home import staff_home_section
from lifedesign.rendering import HOME_SECTIONS, register_nav

exchanges.install()
register_nav("/exchanges", "交流会の席決め", ("coordinator", "admin"))
register_nav("/exchanges/staff", "施設と職員", ("coordinator", "admin"))
if staff_home_section not in HOME_SECTIONS:
    HOME_SECTIONS.append(staff_home_section)

ROUTES: list = [*pages.ROUTES, *api.ROUTES]
COMMANDS: list = [cli.add]
JOBS: list = []
DEMO = demo.load
