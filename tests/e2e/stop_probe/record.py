"""One JSON line per thing that fired, appended to the file named by ``STOP_PROBE_LOG`` (every Airflow process
of the probe writes to it; one ``write`` per line keeps lines whole)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

LOG_ENV = "STOP_PROBE_LOG"


def process_name() -> str:
    try:
        import setproctitle

        return str(setproctitle.getproctitle())[:80]
    except Exception:
        return " ".join(sys.argv[:3])[:80]


def record(kind: str, **fields: Any) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = {"t": time.time(), "pid": os.getpid(), "proc": process_name(), "kind": kind, **fields}
    with Path(path).open("a") as out:
        out.write(json.dumps(line, default=str) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
