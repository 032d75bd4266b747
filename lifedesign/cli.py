"""The `lifedesign` command: serve, migrate, worker, demo, users, token, mail, purge — and each area's own commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from events.errors import DomainError
from lifedesign.bootstrap import prepare
from lifedesign.settings import SettingsError, get_settings


def _fail(message: str, code: int = 1) -> int:
    print(f"lifedesign: error: {message}", file=sys.stderr)
    return code


async def cmd_migrate(args: argparse.Namespace) -> int:
    from lifedesign.migrate import migrate as apply_migrations

    print("applying migrations…", flush=True)
    await apply_migrations(get_settings(), verbose=True)
    print("database is up to date", flush=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lifedesign import access_log
    from lifedesign.app import create_app

    busy = _port_taken(args.host, args.port)
    if busy:
        return _fail(f"cannot listen on {args.host}:{args.port}: {busy} (is another `lifedesign serve` running?)")
    settings = _follow_served_address(args.host, args.port)
    mail_worker = not args.no_worker and settings.run_worker_in_serve
    if args.workers < 1:
        return _fail("--workers must be at least 1")
    if args.workers > 1 and settings.database_kind == "sqlite":
        return _fail("--workers above 1 needs PostgreSQL: SQLite has one writer by design (see README, Scaling)")
    print(f"lifedesign on http://{args.host}:{args.port} — links in mail {settings.base_url}, database {settings.database_kind}, "
          f"mail {'SMTP ' + settings.smtp.host if settings.smtp else 'files in ' + str(settings.mail_dir)}"
          + (f", {args.workers} processes" if args.workers > 1 else ""), flush=True)
    if args.workers > 1:
        return _serve_processes(args, settings, mail_worker)
    access_log.configure()
    app = create_app(settings, pool=True, migrate=True, run_worker=mail_worker)
    uvicorn.Server(server_config(app, args.host, args.port)).run()
    return 0


def _port_taken(host: str, port: int) -> str:
    """Why the port cannot be served ("" when it can): said before migrating, not as a uvicorn trace after."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def _follow_served_address(host: str, port: int):
    """Without LIFEDESIGN_BASE_URL, mail links point where this process serves (not the default :8000): the
    variable is set for the serving processes `--workers` starts, and the address is kept in the data dir for
    the other commands (`demo`, `worker` …). A wildcard host links to 127.0.0.1."""
    import os

    from lifedesign.settings import SERVED_URL_FILE

    if os.environ.get("LIFEDESIGN_BASE_URL", "").strip():
        return get_settings()
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else (
        f"[{host}]" if ":" in host else host)
    os.environ["LIFEDESIGN_BASE_URL"] = f"http://{shown}:{port}"
    get_settings.cache_clear()
    settings = get_settings()
    (settings.data_dir / SERVED_URL_FILE).write_text(settings.base_url + "\n")
    return settings


def _listening_socket(host: str, port: int):
    """SO_REUSEPORT: every process binds the port itself, and the kernel spreads the connections evenly."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _serve_one(host: str, port: int, mail_worker: bool) -> None:
    """One of `serve --workers N`'s processes (started by multiprocessing, spawn)."""
    import uvicorn

    from lifedesign import access_log
    from lifedesign.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("piccolo").setLevel(logging.WARNING)
    access_log.configure()
    app = create_app(get_settings(), pool=True, migrate=False, run_worker=mail_worker)
    uvicorn.Server(server_config(app, host, port)).run(sockets=[_listening_socket(host, port)])
    access_log.flush(1.0)  # a multiprocessing child skips atexit: its last lines are written here


def _serve_processes(args: argparse.Namespace, settings, mail_worker: bool) -> int:
    """Migrate once, then N serving processes on one port (the first also runs the mail worker); a process
    that dies is replaced, and SIGINT/SIGTERM stop them all gracefully."""
    import multiprocessing
    import multiprocessing.connection
    import time

    from lifedesign.migrate import migrate as apply_migrations

    asyncio.run(apply_migrations(settings))
    _listening_socket(args.host, args.port).close()  # the port is free (or shared with SO_REUSEPORT)
    context = multiprocessing.get_context("spawn")
    stopping = []

    def start(index: int):
        process = context.Process(target=_serve_one, args=(args.host, args.port, mail_worker and index == 0),
                                  name=f"lifedesign-serve-{index}")
        process.start()
        return process

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    children = [start(index) for index in range(args.workers)]
    deaths: list[float] = []
    failed = False
    try:
        while not stopping:
            multiprocessing.connection.wait([c.sentinel for c in children], timeout=0.5)
            for index, child in enumerate(children):
                if child.is_alive() or stopping:
                    continue
                deaths = [t for t in deaths if t > time.monotonic() - 60] + [time.monotonic()]
                if len(deaths) > 5:
                    print("lifedesign: error: serving processes keep dying; stopping", file=sys.stderr)
                    failed = True
                    stopping.append(True)
                    break
                print(f"serving process {child.pid} exited with {child.exitcode}; starting another", flush=True)
                children[index] = start(index)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for child in children:
            child.join(timeout=20)
            if child.is_alive():
                child.kill()
    return 1 if failed else 0


def server_config(app, host: str, port: int, *, log_level: str = "info"):
    """uvicorn's settings for `serve`. Its own proxy-header handling stays off: X-Forwarded-For is believed only
    from LIFEDESIGN_TRUSTED_PROXIES (lifedesign.proxies), never from whoever connects."""
    import uvicorn

    # The access log is lifedesign.access_log's (secrets redacted, written off the request path); uvloop and
    # httptools are used when installed (loop="auto", http="auto").
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, proxy_headers=False, workers=1,
                          access_log=False, backlog=2048)


async def cmd_worker(args: argparse.Namespace) -> int:
    from lifedesign import areas, worker

    await prepare()
    worker.PERIODIC_JOBS[:] = worker.jobs_of(areas.INSTALLED)
    if args.once:
        await worker.run_jobs()
        tally = await worker.deliver_once()
        print(f"sent {tally['sent']}, retry {tally['retry']}, failed {tally['failed']}, re-queued {tally['requeued']}")
        return 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.run_forever(stop)
    return 0


async def cmd_users_add(args: argparse.Namespace) -> int:
    from events import people
    from events.access import Actor

    student = None
    given = [flag for flag, value in (("--school", args.school), ("--school-level", args.school_level),
                                      ("--grade", args.grade), ("--birth-date", args.birth_date),
                                      ("--guardian-email", args.guardian_email),
                                      ("--guardian-name", args.guardian_name)) if value is not None]
    if "student" in args.role:
        missing = [flag for flag, value in (("--school NAME", args.school), ("--birth-date YYYY-MM-DD", args.birth_date))
                   if not value]
        if missing:
            return _fail(f"--role student needs {' and '.join(missing)} (and --guardian-email for a student under 18)")
        student = _student_info(args)
        if student is None:
            return _fail(f"--birth-date must be a date like 2008-04-01, got {args.birth_date!r}")
    elif given:
        return _fail(f"{', '.join(given)}: only with --role student")
    if "facility_staff" in args.role and not args.facility:
        return _fail("--role facility_staff needs --facility NAME (the facility's name as listed, or its number)")
    if args.facility and "facility_staff" not in args.role:
        return _fail("--facility: only with --role facility_staff")
    await prepare()
    facility_id = None
    if args.facility:
        facility_id = await people.find_facility(args.facility)
        if facility_id is None:
            return _fail(f"--facility: no facility named {args.facility!r} (see the exchanges page for the list)")
    person_id = await people.add_account(Actor.system("cli"), args.email, args.name, kana=args.kana or "",
                                         phone=args.phone or "", locale=args.locale, roles=tuple(args.role),
                                         student=student, facility_id=facility_id)
    print(person_id)
    return 0


def _student_info(args: argparse.Namespace):
    """The student profile the options describe; None for a malformed birth date. The school level is asked,
    or taken from the age (under 18: high school)."""
    from datetime import date

    from events import people
    from events.consent import is_minor
    from events.db import utcnow

    try:
        birth = date.fromisoformat(args.birth_date.strip())
    except ValueError:
        return None
    level = args.school_level or ("high_school" if is_minor(birth, utcnow().date()) else "university")
    return people.StudentInfo(school_level=level, school_name=args.school, grade=args.grade or 1, birth_date=birth,
                              guardian_email=args.guardian_email or "", guardian_name=args.guardian_name or "")


async def cmd_token_create(args: argparse.Namespace) -> int:
    from events import auth, people

    await prepare()
    person = await people.find_by_email(args.email.strip().lower())
    if person is None:
        return _fail(f"no account with e-mail {args.email}")
    print(await auth.create_api_token(person["id"], args.label or "cli"))
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from lifedesign.demo import load_demo

    settings = await prepare()
    print(f"filling {_database_label(settings)} (data dir {settings.data_dir})", flush=True)
    await load_demo(progress=lambda line: print(line, flush=True))
    print(f"filled {_database_label(settings)}; mail goes to "
          + (f"SMTP {settings.smtp.host}" if settings.smtp else f"{settings.mail_dir} (see `lifedesign mail`)"),
          flush=True)
    return 0


def _database_label(settings) -> str:
    """Which database a command works on, as a person can find it again (a password is never shown)."""
    from urllib.parse import urlsplit, urlunsplit

    if settings.database_kind == "sqlite":
        return f"SQLite database {settings.sqlite_path.resolve()}"
    parts = urlsplit(settings.database_url)
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return f"PostgreSQL database {urlunsplit(parts._replace(netloc=netloc, query=''))}"


async def cmd_mail(args: argparse.Namespace) -> int:
    """The newest mails the file transport wrote (`<data dir>/mail/*.eml`), newest first, with their links."""
    from events import outbox
    from lifedesign import mail_files

    settings = await prepare()
    if args.last < 1:
        return _fail("--last must be at least 1")
    if settings.smtp:
        print(f"mail is sent by SMTP ({settings.smtp.host}); only mail written before that is in {settings.mail_dir}",
              file=sys.stderr)
    found = mail_files.newest(settings.mail_dir, last=args.last, to=args.to)
    for item in found:
        print(f"{item.when}  {item.to}  {item.subject}")
        for link in item.links:
            print(f"  {link}")
        print(f"  ({item.path})")
    waiting = await outbox.due_count()
    if not found:
        print(f"no mail{' to ' + args.to if args.to else ''} in {settings.mail_dir} yet")
    if waiting:
        print(f"{waiting} more queued, not written yet: `lifedesign serve` writes them within seconds "
              f"(or run `lifedesign worker --once`)")
    return 0


async def cmd_purge(args: argparse.Namespace) -> int:
    from events import retention

    await prepare()
    unknown = sorted(set(args.category or []) - {c.name for c in retention.categories()})
    if unknown:
        return _fail(f"unknown category {', '.join(unknown)}; known: "
                     + ", ".join(c.name for c in retention.categories()))

    def progress(item: retention.CategoryReport) -> None:
        if args.dry_run:
            print(f"{item.name:<22} {item.due:>9} due   (kept {item.period}) {item.label}", flush=True)
        else:
            print(f"{item.name:<22} {item.done:>9}/{item.due} purged in {item.batches} batches", flush=True)

    report = await retention.run(dry_run=args.dry_run, progress=progress, only=args.category or None,
                                 batch=args.batch)
    verb = "would purge" if args.dry_run else "purged"
    print(f"{verb} {report.due if args.dry_run else report.done} rows in {report.seconds:.1f} s"
          + ("" if args.dry_run else f"; longest batch {report.longest_batch_s:.2f} s"), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifedesign",
        description="金沢区 ライフデザイン・保育交流 event manager (Kanazawa ward, Yokohama).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the web service (applies migrations, runs the mail worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="do not run the mail worker in this process")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="serving processes (PostgreSQL only; the first also runs the mail worker)")
    serve.set_defaults(sync_handler=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)
    worker = sub.add_parser("worker", help="deliver queued mail and run scheduled jobs")
    worker.add_argument("--once", action="store_true", help="one pass, then exit")
    worker.set_defaults(handler=cmd_worker)
    sub.add_parser("demo", help="load believable Kanazawa-ward demo data").set_defaults(handler=cmd_demo)
    users = sub.add_parser("users", help="manage accounts").add_subparsers(dest="users_command", metavar="ACTION")
    add = users.add_parser("add", help="create an account (any role, including coordinator and admin)")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, action="append",
                     choices=["student", "host_family", "facility_staff", "coordinator", "admin"])
    add.add_argument("--kana")
    add.add_argument("--phone", help="a phone number to reach them on the day (digits, hyphens allowed)")
    add.add_argument("--facility", metavar="NAME", help="facility staff: their facility, by name or number (required)")
    add.add_argument("--locale", default="ja", choices=["ja", "en"])
    add.add_argument("--school", help="student: school name (required with --role student)")
    add.add_argument("--school-level", choices=["high_school", "university"],
                     help="student: default high_school under 18, university otherwise")
    add.add_argument("--grade", type=int, help="student: year 1-6 (default 1)")
    add.add_argument("--birth-date", metavar="YYYY-MM-DD", help="student: birth date (required with --role student)")
    add.add_argument("--guardian-email", help="student under 18: the guardian who is asked for consent")
    add.add_argument("--guardian-name")
    add.set_defaults(handler=cmd_users_add)
    mail = sub.add_parser("mail", help="show the newest mails written to the data dir, with their links")
    mail.add_argument("--last", type=int, default=5, metavar="N", help="how many (default 5)")
    mail.add_argument("--to", metavar="ADDRESS", help="only mail to this address")
    mail.set_defaults(handler=cmd_mail)
    token = sub.add_parser("token", help="personal API tokens").add_subparsers(dest="token_command", metavar="ACTION")
    create = token.add_parser("create", help="create an API token and print it (only the token)")
    create.add_argument("--email", required=True)
    create.add_argument("--label")
    create.set_defaults(handler=cmd_token_create)
    purge = sub.add_parser("purge", help="delete or scrub personal data past its retention period (see README)")
    purge.add_argument("--dry-run", action="store_true", help="only show what would go, by category and count")
    purge.add_argument("--category", action="append", help="only this category (repeatable)")
    purge.add_argument("--batch", type=int, default=500, help="rows per transaction to start with (adapts)")
    purge.set_defaults(handler=cmd_purge)
    from lifedesign import areas

    for area in areas.INSTALLED:
        for add_commands in area.COMMANDS:
            add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("piccolo",):
        logging.getLogger(name).setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None) and not getattr(args, "sync_handler", None):
        parser.print_help()
        return 2
    try:
        get_settings()
        if getattr(args, "sync_handler", None):
            return args.sync_handler(args)
        return asyncio.run(args.handler(args))
    except SettingsError as exc:
        return _fail(str(exc), 2)
    except DomainError as exc:
        return _fail(f"{exc.message} ({exc.code})", 1)
    except (OSError, RuntimeError) as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
