"""Retention settings: defaults, a malformed value names its variable (exit 2 at start-up), the audit log is
kept longest, and the domain gets what the shell read (events.config, used by the purge and the notice)."""

import os
import subprocess
import sys

import pytest

from lifedesign.bootstrap import configure_domain
from lifedesign.settings import SettingsError, load_settings


def test_retention_defaults_and_the_domain_gets_them(tmp_path):
    from events.config import config, configure

    settings = load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path)})
    r = settings.retention
    assert (r.token_days, r.outbox_months, r.address_months, r.minor_months, r.survey_months, r.audit_months,
            r.purge_hour) == (7, 6, 3, 12, 24, 60, 3)
    before = config()
    try:
        configure_domain(load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path), "LIFEDESIGN_RETENTION_OUTBOX_MONTHS": "9",
                                        "LIFEDESIGN_PRIVACY_CONTACT": "金沢区役所 4階"}))
        assert config().retention_outbox_months == 9 and config().privacy_contact == "金沢区役所 4階"
        assert config().mail_dir == tmp_path.resolve() / "mail"
    finally:
        configure(**before.__dict__)


@pytest.mark.parametrize(("name", "value"), [
    ("LIFEDESIGN_RETENTION_TOKEN_DAYS", "a week"),
    ("LIFEDESIGN_RETENTION_OUTBOX_MONTHS", "0"),
    ("LIFEDESIGN_RETENTION_MINOR_MONTHS", "-1"),
    ("LIFEDESIGN_PURGE_HOUR", "24"),
    ("LIFEDESIGN_RETENTION_AUDIT_MONTHS", "12"),  # shorter than the survey answers' 24: the audit goes last
])
def test_a_malformed_retention_setting_names_its_variable(tmp_path, name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path), name: value})
    assert name in str(caught.value)


def test_the_cli_stops_with_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "LIFEDESIGN_DATA_DIR": str(tmp_path), "LIFEDESIGN_RETENTION_AUDIT_MONTHS": "abc"}
    result = subprocess.run([sys.executable, "-m", "lifedesign", "purge", "--dry-run"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LIFEDESIGN_RETENTION_AUDIT_MONTHS" in lines[0]


def test_the_readme_states_every_retention_category_and_default():
    from pathlib import Path

    from events import retention
    from lifedesign import areas  # noqa: F401 - every area's categories
    from lifedesign.settings import RetentionSettings

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert [c.name for c in retention.categories() if f"`{c.name}`" not in text] == []
    defaults = RetentionSettings()
    for variable, value in (("TOKEN_DAYS", defaults.token_days), ("OUTBOX_MONTHS", defaults.outbox_months),
                            ("ADDRESS_MONTHS", defaults.address_months), ("MINOR_MONTHS", defaults.minor_months),
                            ("SURVEY_MONTHS", defaults.survey_months), ("AUDIT_MONTHS", defaults.audit_months)):
        assert f"| `LIFEDESIGN_RETENTION_{variable}` | `{value}` |" in text
