"""CLI: `lifedesign import facilities FILE`, `lifedesign import staff FILE`, `lifedesign exchanges plan ID`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from events.access import Actor
from lifedesign.bootstrap import prepare

CLI = Actor.system("cli")  # the CLI acts for the ward: its imports and plans are audited as "cli"


async def cmd_import(args: argparse.Namespace) -> int:
    from events.exchanges import importing

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"lifedesign: error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    await prepare()
    last = [-1]

    def progress(done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done // step != last[0]:
            last[0] = done // step
            print(f"{args.what}: {done}/{total}", flush=True)

    run = importing.import_staff if args.what == "staff" else importing.import_facilities
    print(f"checking {args.file} …", flush=True)
    report = await run(data, Path(args.file).name, actor=CLI, dry_run=args.dry_run, progress=progress)
    if not report.ok:
        for error in report.errors:
            print(f"{args.file}:{error.line}: {error.message}" if error.line else f"{args.file}: {error.message}",
                  file=sys.stderr)
        print(f"{len(report.errors)} problem(s); nothing was imported", file=sys.stderr)
        return 1
    verb = "would import" if args.dry_run else "imported"
    print(f"{verb} {report.rows} row(s) ({report.encoding}): {report.created} new, {report.updated} updated, "
          f"{report.unchanged} unchanged", flush=True)
    return 0


async def cmd_plan(args: argparse.Namespace) -> int:
    from events.exchanges import sessions

    await prepare()
    summary = await sessions.assign_tables(args.session, args.seed, actor=CLI)
    print(f"session {summary.session_id}: {summary.people} people, {summary.tables} tables, {summary.rounds} rounds "
          f"({summary.fixed_rounds} held), seed {summary.seed}")
    print(f"rounds without repeats: {summary.clash_free_rounds} of {summary.rounds} (bound {summary.bound}); "
          f"repeat pairs {summary.repeat_pairs}; same-facility pairs {summary.same_facility_pairs}; "
          f"pairs met before {summary.prior_pairs}; {summary.method}; {summary.seconds:.2f} s")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    importer = sub.add_parser("import", help="import facilities or staff from CSV (UTF-8 / Shift_JIS) or XLSX")
    kinds = importer.add_subparsers(dest="import_what", metavar="WHAT")
    for what, text in (("facilities", "facilities (施設名, 種別, 地区)"),
                       ("staff", "facility staff (氏名, ふりがな, メールアドレス, 施設名, 職種)")):
        parser = kinds.add_parser(what, help=text)
        parser.add_argument("file", metavar="FILE")
        parser.add_argument("--dry-run", action="store_true", help="check the file only; write nothing")
        parser.set_defaults(handler=cmd_import, what=what)
    exchanges = sub.add_parser("exchanges", help="exchange sessions").add_subparsers(dest="exchanges_command",
                                                                                     metavar="ACTION")
    plan = exchanges.add_parser("plan", help="plan (or re-plan the remaining rounds of) a session's tables")
    plan.add_argument("session", type=int, metavar="SESSION_ID")
    plan.add_argument("--seed", type=int)
    plan.set_defaults(handler=cmd_plan)
