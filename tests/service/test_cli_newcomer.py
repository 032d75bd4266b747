"""The newcomer's path through the CLI as README tells it: `serve --port P` links to :P, `mail` shows the login
link, `users add --role student` makes a student, and every bad input is one line with exit code 1."""

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from datetime import date

from events import people
from lifedesign.settings import load_settings
from tests.conftest import make_person


def _run_blocking(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lifedesign", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


async def _run(*args, env=None):
    return await asyncio.to_thread(_run_blocking, *args, env=env)


def _one_line_error(result, code_or_text: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("lifedesign: error: ") and code_or_text in result.stderr, result.stderr


async def test_users_add_creates_a_student_and_refuses_bad_input_in_one_line(db, tmp_path):
    env = {"LIFEDESIGN_DATA_DIR": str(tmp_path)}
    base = ("users", "add", "--email", "Kana.Student@Example.jp", "--name", "金沢 かな", "--role", "student")
    _one_line_error(await _run(*base, env=env), "--school NAME and --birth-date")
    _one_line_error(await _run(*base, "--school", "横浜市立大学", "--birth-date", "2004-02-30", env=env), "--birth-date")
    minor_birth = date(date.today().year - 16, 4, 1).isoformat()
    _one_line_error(await _run(*base, "--school", "金沢高校", "--birth-date", minor_birth, env=env), "guardian_required")
    _one_line_error(await _run(*base, "--school", "金沢高校", "--birth-date", minor_birth, "--guardian-email", "nope",
                               env=env), "invalid_email")
    _one_line_error(await _run("users", "add", "--email", "c@example.jp", "--name", "X", "--role", "coordinator",
                               "--school", "A", env=env), "only with --role student")
    assert await people.find_by_email("kana.student@example.jp") is None  # nothing half-made by the refusals

    made = await _run(*base, "--school", "金沢高校", "--birth-date", minor_birth, "--grade", "2",
                      "--guardian-email", "Kana.Family@Example.jp", "--guardian-name", "金沢 父", env=env)
    assert made.returncode == 0, made.stderr
    person = await people.find_by_email("kana.student@example.jp")
    assert int(made.stdout.strip()) == person["id"]
    assert await people.roles_of(person["id"]) == {"student"}
    profile = await people.student_profile(person["id"])
    assert (profile["school_name"], profile["school_level"], profile["grade"], profile["guardian_email"]) == (
        "金沢高校", "high_school", 2, "kana.family@example.jp")  # level from the age, when not given
    adult = await _run("users", "add", "--email", "adult@example.jp", "--name", "大人 学生", "--role", "student",
                       "--school", "横浜市立大学", "--birth-date", "2003-05-01", env=env)
    assert adult.returncode == 0, adult.stderr
    assert (await people.student_profile(int(adult.stdout)))["school_level"] == "university"


async def test_users_add_gives_facility_staff_their_facility_and_anyone_a_phone(db, tmp_path):
    from events.core.tables import Facility
    from events.db import write_transaction

    env = {"LIFEDESIGN_DATA_DIR": str(tmp_path)}
    async with write_transaction():
        facility = (await Facility.insert(Facility(name="並木保育園", kind="nursery", area="並木")).returning(
            Facility.id))[0]["id"]
    base = ("users", "add", "--email", "Staff@Example.jp", "--name", "並木 保子", "--role", "facility_staff")
    _one_line_error(await _run(*base, env=env), "--facility NAME")
    _one_line_error(await _run(*base, "--facility", "六浦保育園", env=env), "no facility named '六浦保育園'")
    _one_line_error(await _run("users", "add", "--email", "c@example.jp", "--name", "X", "--role", "coordinator",
                               "--facility", "並木保育園", env=env), "only with --role facility_staff")
    _one_line_error(await _run(*base, "--facility", "並木保育園", "--phone", "not a phone", env=env), "phone")
    assert await people.find_by_email("staff@example.jp") is None  # nothing half-made by the refusals
    made = await _run(*base, "--facility", " 並木保育園 ", "--phone", "045-788-7777", env=env)
    assert made.returncode == 0, made.stderr
    person = await people.find_by_email("staff@example.jp")
    assert int(made.stdout) == person["id"] and person["phone"] == "045-788-7777"
    assert [f["id"] for f in await people.facilities_of(person["id"])] == [facility]
    by_number = await _run("users", "add", "--email", "second@example.jp", "--name", "並木 次郎", "--role",
                           "facility_staff", "--facility", str(facility), env=env)
    assert by_number.returncode == 0, by_number.stderr
    assert [f["id"] for f in await people.facilities_of(int(by_number.stdout))] == [facility]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_and_request_login(port: int, env: dict[str, str], email: str) -> str:
    """Start `serve --port`, wait for uvicorn's listening line (no sleeping), ask for a login link, stop it."""
    process = subprocess.Popen([sys.executable, "-m", "lifedesign", "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if "Uvicorn running on" in line:  # listening (start-up done, socket bound)
                break
        else:
            raise AssertionError("".join(output))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/magic-link", method="POST",
                                         data=json.dumps({"email": email}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
    finally:
        process.terminate()
        process.wait(timeout=30)
    return "".join(output)


async def test_serve_port_links_mail_there_and_mail_command_shows_the_link(db, tmp_path):
    email = "newcomer@kanazawa-ward.example.jp"
    await make_person("coordinator", email)
    env = {**os.environ, "LIFEDESIGN_DATA_DIR": str(tmp_path), "LIFEDESIGN_WORKER_IN_SERVE": "0"}
    env.pop("LIFEDESIGN_BASE_URL")
    # negative control: before `serve` ran in this data dir, the other commands would link to the default port
    assert load_settings(env).base_url == "http://127.0.0.1:8000"
    port = _free_port()
    started = await asyncio.to_thread(_serve_and_request_login, port, env, email)
    assert f"links in mail http://127.0.0.1:{port}" in started
    assert load_settings(env).base_url == f"http://127.0.0.1:{port}"  # `demo`, `worker`, `mail` … follow it

    assert (await _run("worker", "--once", env=env)).returncode == 0
    shown = await _run("mail", "--to", email.upper(), "--last", "1", env=env)
    assert shown.returncode == 0, shown.stderr
    links = re.findall(r"^  (http\S+)$", shown.stdout, re.M)
    assert len(links) == 1 and links[0].startswith(f"http://127.0.0.1:{port}/login/"), shown.stdout
    assert email in shown.stdout and "ログイン" in shown.stdout
    # README's grep finds the same link in the .eml: its text part is plain UTF-8 (8bit), not base64
    eml = next((tmp_path / "mail").glob("*.eml")).read_bytes()
    assert b"Content-Transfer-Encoding: 8bit" in eml and b"base64" not in eml
    assert re.findall(rb"^http.*/login/\S*", eml, re.M) == [links[0].encode()]
    assert "ログイン" in eml.decode("utf-8")

    other = await _run("mail", "--to", "someone.else@example.jp", env=env)
    assert other.returncode == 0 and "no mail to someone.else@example.jp" in other.stdout and "http" not in other.stdout
    _one_line_error(await _run("mail", "--last", "0", env=env), "--last")

    explicit = {**env, "LIFEDESIGN_BASE_URL": "https://lifedesign.example.jp"}
    assert load_settings(explicit).base_url == "https://lifedesign.example.jp"  # the setting always wins


async def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await _run("serve", "--port", str(port), env={"LIFEDESIGN_DATA_DIR": str(tmp_path)})
    _one_line_error(result, f"cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "served_url").exists()  # nothing recorded for a server that never ran
