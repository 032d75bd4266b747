"""`lifedesign lottery draw EVENT_ID` and `lifedesign lottery verify EVENT_ID` (exit 0 OK, 1 MISMATCH)."""

from __future__ import annotations

import argparse
import json

from lifedesign.bootstrap import prepare


async def cmd_lottery_draw(args: argparse.Namespace) -> int:
    from events.seminars import draws
    await prepare()
    result = await draws.draw_lottery(args.event_id)
    print(f"drawn: event {args.event_id}, seed {result['seed']}, {len(result['winners'])} winners, "
          f"{len(result['waitlist'])} on the waiting list")
    return 0


async def cmd_lottery_verify(args: argparse.Namespace) -> int:
    from events.config import config
    from events.seminars import draws
    await prepare()
    result = await draws.verify_draw(args.event_id)
    summary = {k: result[k] for k in ("event_id", "seed", "commitment", "algorithm", "capacity", "applications")
               if k in result}
    print(("OK " if result["ok"] else "MISMATCH ") + json.dumps(summary, ensure_ascii=False))
    print(f"  anyone can recompute it: python3 scripts/verify_lottery.py "
          f"{config().base_url}/api/v1/events/{args.event_id}/lottery")
    return 0 if result["ok"] else 1


def add(sub: argparse._SubParsersAction) -> None:
    lottery = sub.add_parser("lottery", help="lottery (抽選) draws: draw now, or re-run a recorded draw")
    actions = lottery.add_subparsers(dest="lottery_command", metavar="ACTION")
    draw = actions.add_parser("draw", help="draw a lottery event now (closes its window)")
    draw.add_argument("event_id", type=int)
    draw.set_defaults(handler=cmd_lottery_draw)
    verify = actions.add_parser("verify", help="re-run the recorded draw; prints OK (exit 0) or MISMATCH (exit 1)")
    verify.add_argument("event_id", type=int)
    verify.set_defaults(handler=cmd_lottery_verify)


COMMANDS = [add]
