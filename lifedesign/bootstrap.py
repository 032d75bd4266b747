"""Start-up steps every entry point shares: tell the domain its deployment, and migrate the database."""

from __future__ import annotations

from dataclasses import replace

from events.config import WardContact, configure
from lifedesign.i18n import gettext_for
from lifedesign.settings import Settings, get_settings


def english_contact(contact: WardContact) -> WardContact:
    """The contact block for English pages and mails: the defaults have English in core.po, a ward's own text
    stays as written."""
    _ = gettext_for("en")
    return replace(contact, office=_(contact.office), address=_(contact.address), hours=_(contact.hours))


def configure_domain(settings: Settings) -> None:
    configure(
        base_url=settings.base_url,
        mail_from=settings.mail_from,
        mail_from_name=settings.mail_from_name,
        consent_expiry_hours=settings.consent_expiry_hours,
        reminder_days_before=settings.reminder_days_before,
        reminder_hour=settings.reminder_hour,
        survey_delay_hours=settings.survey_delay_hours,
        retention_token_days=settings.retention.token_days,
        retention_outbox_months=settings.retention.outbox_months,
        retention_address_months=settings.retention.address_months,
        retention_minor_months=settings.retention.minor_months,
        retention_survey_months=settings.retention.survey_months,
        retention_audit_months=settings.retention.audit_months,
        purge_hour=settings.retention.purge_hour,
        privacy_contact=settings.retention.privacy_contact,
        mail_dir=settings.mail_dir,
        ward_contact=settings.contact,
        ward_contact_en=english_contact(settings.contact),
    )


async def prepare(*, migrate: bool = True) -> Settings:
    """For CLI commands: settings read, the domain configured, migrations applied."""
    from lifedesign.migrate import migrate as apply_migrations

    settings = get_settings()
    configure_domain(settings)
    if migrate:
        await apply_migrations(settings)
    return settings
