"""Follow-up feedback surveys: building, sending, answering, results and exports.

`install()` registers the area's share of personal-data rights and retention (events.feedback.privacy); the
shell calls it once.
"""

from __future__ import annotations


def install() -> None:
    from events.feedback import privacy

    privacy.register()
