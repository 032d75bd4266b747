#!/usr/bin/env python3
"""Verify a lifedesign lottery (抽選) from its public record, with Python's standard library only.

    python3 scripts/verify_lottery.py https://…/api/v1/events/12/lottery     # or a saved JSON file

The record lists the commitment published before applications opened, the revealed seed, the seats, and every
application ticket with its priority group and size (no names). This script checks that sha256(seed) is the
commitment, recomputes the order — priority descending, then sha256("seed:ticket"), then the ticket — gives
seats down that order (a group wins whole or waits whole), and compares with the recorded winners and waiting
list. It prints OK or MISMATCH (exit code 1), and, given `--ticket`, where that ticket stands.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request


def load(source: str) -> dict:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=30) as response:  # noqa: S310 - a URL the user gives
            return json.load(response)
    with open(source, encoding="utf-8") as handle:
        return json.load(handle)


def recompute(record: dict) -> tuple[list[str], list[str]]:
    seed = record["seed"]
    entries = record["entries"]
    ordered = sorted(entries, key=lambda e: (-int(e["priority"]),
                                             hashlib.sha256(f"{seed}:{e['ticket']}".encode()).hexdigest(), e["ticket"]))
    left, winners, waitlist = int(record["seats"]), [], []
    for entry in ordered:
        if int(entry["size"]) <= left:
            winners.append(entry["ticket"])
            left -= int(entry["size"])
        else:
            waitlist.append(entry["ticket"])
    return winners, waitlist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a lifedesign lottery from its public record.")
    parser.add_argument("source", help="the record's URL (/api/v1/events/<id>/lottery) or a saved JSON file")
    parser.add_argument("--ticket", help="your ticket (from your application mail): show where it stands")
    args = parser.parse_args(argv)
    record = load(args.source)
    if not record.get("seed"):
        print("not drawn yet: the seed is revealed at the draw; commitment " + record.get("commitment", "?"))
        return 1
    committed = hashlib.sha256(record["seed"].encode()).hexdigest() == record["commitment"]
    winners, waitlist = recompute(record)
    same = winners == record["winners"] and waitlist == record["waitlist"]
    print(("OK" if committed and same else "MISMATCH") + f": seed matches commitment: {committed}; "
          f"order reproduced: {same}; {len(winners)} won, {len(waitlist)} on the waiting list")
    if args.ticket:
        if args.ticket in winners:
            print(f"ticket {args.ticket}: won ({winners.index(args.ticket) + 1} of {len(winners)} in draw order)")
        elif args.ticket in waitlist:
            print(f"ticket {args.ticket}: waiting list, position {waitlist.index(args.ticket) + 1}")
        else:
            print(f"ticket {args.ticket}: not in this draw")
    return 0 if committed and same else 1


if __name__ == "__main__":
    sys.exit(main())
