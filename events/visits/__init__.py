"""Visits area: host households, rounds and slots, requests, matching proposals and confirmed visits.

`install()` connects the area to the kernel (events.signals, events.consent); the shell calls it once.
"""

from __future__ import annotations


def install() -> None:
    from events import signals
    from events.visits import confirmations, privacy, requests  # noqa: F401 - requests registers its consent subject

    signals.VISIT_HOST.provide(confirmations.visit_host)
    signals.VISIT_MATCHED.provide(confirmations.visit_matched)
    signals.EVENT_MEMBERS.provide(confirmations.members_of_event)
    signals.SURVEY_RECIPIENTS.provide("host_family", confirmations.host_of_event)
    signals.PLACE_CHANGED.connect(confirmations.on_place_changed)
    signals.EVENT_PAGE.provide("home_visit", confirmations.visit_path)
    privacy.register()  # the area's share of a person's data and its retention category
