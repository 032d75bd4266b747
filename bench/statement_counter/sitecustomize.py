"""Counts the SQL statements a benchmarked server sends, without touching its code.

`bench/registration.py` puts this folder on the server's PYTHONPATH with LIFEDESIGN_BENCH_STATEMENTS=<dir>;
Python imports `sitecustomize` at start-up in every process (uvicorn's spawned workers too). It wraps the
drivers at their lowest public hook — a trace callback on every sqlite3 connection (each statement SQLite
runs: PRAGMAs, BEGIN and COMMIT included) and a query logger on every asyncpg connection (each statement
sent: BEGIN, COMMIT and the pool's reset included) — and writes `<dir>/<pid>.json` ({"count", "texts"})
whenever the count changed, at most ten times a second, from a daemon thread. With
LIFEDESIGN_BENCH_TRACE=1 it also keeps how often each statement text ran, for reading.
"""

from __future__ import annotations

import os

_DIR = os.environ.get("LIFEDESIGN_BENCH_STATEMENTS", "")

if _DIR:
    import collections
    import json
    import re
    import sqlite3
    import threading
    import time

    _trace = os.environ.get("LIFEDESIGN_BENCH_TRACE") == "1"
    _count = [0]
    _texts: collections.Counter[str] = collections.Counter()
    _digits = re.compile(r"\b\d+\b|'[^']*'")

    def _seen(text: str) -> None:
        _count[0] += 1
        if _trace:
            _texts[_digits.sub("?", " ".join(str(text).split()))[:160]] += 1

    _connect = sqlite3.connect

    def _counting_connect(*args, **kwargs):
        connection = _connect(*args, **kwargs)
        connection.set_trace_callback(_seen)
        return connection

    sqlite3.connect = _counting_connect

    try:
        import asyncpg.connection

        _init = asyncpg.connection.Connection.__init__

        def _counting_init(self, *args, **kwargs):
            _init(self, *args, **kwargs)
            self.add_query_logger(lambda record: _seen(record.query))

        asyncpg.connection.Connection.__init__ = _counting_init
    except ImportError:  # pragma: no cover - SQLite only
        pass

    def _write() -> None:
        written = -1
        path = os.path.join(_DIR, f"{os.getpid()}.json")
        while True:
            if _count[0] != written:
                written = _count[0]
                with open(path + ".tmp", "w", encoding="utf-8") as out:
                    json.dump({"count": written, "texts": dict(_texts)}, out)
                os.replace(path + ".tmp", path)
            time.sleep(0.1)

    threading.Thread(target=_write, name="statement-counter", daemon=True).start()
