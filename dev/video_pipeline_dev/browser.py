"""The headless Chromium the browser tests and benches drive through Playwright: Debian's
(``scripts/install-browser.sh``), as Playwright's own browser download does not work here."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# As root on a closed network: no sandbox, and nothing that phones home (refused connections otherwise pile up).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
