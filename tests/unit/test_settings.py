import os
import stat
import subprocess
import sys

import pytest

from lifedesign.settings import SettingsError, load_settings


def test_defaults(tmp_path):
    settings = load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path)})
    assert settings.database_kind == "sqlite"
    assert settings.sqlite_path == tmp_path / "lifedesign.sqlite3"
    assert settings.smtp is None
    assert settings.mail_dir == tmp_path / "mail"
    assert settings.base_url == "http://127.0.0.1:8000"
    assert not settings.https
    key_file = tmp_path / "secret_key"
    assert key_file.read_text() == settings.secret_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # generated once: a second load keeps the same key
    assert load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path)}).secret_key == settings.secret_key


def test_smtp_urls(tmp_path):
    env = {"LIFEDESIGN_DATA_DIR": str(tmp_path)}
    plain = load_settings({**env, "LIFEDESIGN_SMTP_URL": "smtp://127.0.0.1:2525"}).smtp
    assert (plain.host, plain.port, plain.security, plain.username) == ("127.0.0.1", 2525, "none", None)
    tls = load_settings({**env, "LIFEDESIGN_SMTP_URL": "smtp+starttls://ward%40x.jp:p%40ss@mail.example.jp"}).smtp
    assert (tls.port, tls.security, tls.username, tls.password) == (587, "starttls", "ward@x.jp", "p@ss")
    assert load_settings({**env, "LIFEDESIGN_SMTP_URL": "smtps://u:p@mail.example.jp"}).smtp.port == 465


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIFEDESIGN_DATABASE_URL", "mysql://localhost/x"),
        ("LIFEDESIGN_DATABASE_URL", "postgresql://host:notaport/db"),
        ("LIFEDESIGN_SMTP_URL", "http://mail.example.jp"),
        ("LIFEDESIGN_SMTP_URL", "smtp://"),
        ("LIFEDESIGN_BASE_URL", "ftp://x"),
        ("LIFEDESIGN_MAIL_FROM", "not an address"),
        ("LIFEDESIGN_SECRET_KEY", "short"),
        ("LIFEDESIGN_SESSION_IDLE_MINUTES", "abc"),
    ],
)
def test_malformed_setting_names_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({"LIFEDESIGN_DATA_DIR": str(tmp_path), name: value})
    assert name in str(caught.value)


def test_cli_bad_setting_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "LIFEDESIGN_DATA_DIR": str(tmp_path), "LIFEDESIGN_SMTP_URL": "imap://x"}
    result = subprocess.run([sys.executable, "-m", "lifedesign", "migrate"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LIFEDESIGN_SMTP_URL" in lines[0]
    assert "Traceback" not in result.stderr
