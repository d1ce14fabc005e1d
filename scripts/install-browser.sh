#!/bin/sh
# Debian's Chromium for the browser test (tests/e2e/test_review_browser.py), driven by Playwright from PyPI
# with executable_path=/usr/bin/chromium (Playwright's own browser download does not work on the CI machine).
# Installs it only when missing and only where that is possible (root with apt-get); otherwise it says so and
# exits 0, and the browser test skips with a reason.
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: $CHROMIUM is missing and this is not root with apt-get; the browser test will skip" >&2
    exit 0
fi
echo "install-browser: installing Debian's chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "install-browser: $("$CHROMIUM" --version 2>/dev/null)" >&2
