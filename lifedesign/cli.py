"""The `lifedesign` command: serve, migrate, worker, demo, users, token — and each area's own commands."""

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

    from lifedesign.app import create_app

    settings = get_settings()
    app = create_app(settings, pool=True, migrate=True, run_worker=not args.no_worker and settings.run_worker_in_serve)
    print(f"lifedesign on http://{args.host}:{args.port} — database {settings.database_kind}, "
          f"mail {'SMTP ' + settings.smtp.host if settings.smtp else 'files in ' + str(settings.mail_dir)}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=True, workers=1)
    return 0


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

    await prepare()
    person_id = await people.add_account(Actor.system("cli"), args.email, args.name, kana=args.kana or "",
                                         locale=args.locale, roles=tuple(args.role))
    print(person_id)
    return 0


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

    await prepare()
    await load_demo(progress=lambda line: print(line, flush=True))
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
    add.add_argument("--locale", default="ja", choices=["ja", "en"])
    add.set_defaults(handler=cmd_users_add)
    token = sub.add_parser("token", help="personal API tokens").add_subparsers(dest="token_command", metavar="ACTION")
    create = token.add_parser("create", help="create an API token and print it (only the token)")
    create.add_argument("--email", required=True)
    create.add_argument("--label")
    create.set_defaults(handler=cmd_token_create)
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
