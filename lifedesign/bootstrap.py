"""Start-up steps every entry point shares: tell the domain its deployment, and migrate the database."""

from __future__ import annotations

from events.config import configure
from lifedesign.settings import Settings, get_settings


def configure_domain(settings: Settings) -> None:
    configure(
        base_url=settings.base_url,
        mail_from=settings.mail_from,
        mail_from_name=settings.mail_from_name,
        consent_expiry_hours=settings.consent_expiry_hours,
        reminder_days_before=settings.reminder_days_before,
        reminder_hour=settings.reminder_hour,
        survey_delay_hours=settings.survey_delay_hours,
    )


async def prepare(*, migrate: bool = True) -> Settings:
    """For CLI commands: settings read, the domain configured, migrations applied."""
    from lifedesign.migrate import migrate as apply_migrations

    settings = get_settings()
    configure_domain(settings)
    if migrate:
        await apply_migrations(settings)
    return settings
