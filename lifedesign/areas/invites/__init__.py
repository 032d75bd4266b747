"""Area 'invites': pages, API, CLI commands, worker jobs and demo data (see lifedesign/areas/__init__.py)."""

ROUTES: list = []
COMMANDS: list = []
JOBS: list = []
DEMO = None
