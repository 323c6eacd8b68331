#!/usr/bin/env bash
# The test command of the README: installs everything on a fresh machine, then runs the tests.
# Used as-is by CI (.ci/run). Set OMRGEMMA_VENV to reuse another virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${OMRGEMMA_VENV:-.venv}"

# Headless Chromium for the preview test (Debian packages); skipped where apt is not available.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium not installed; browser tests will skip" >&2
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
exec "$venv/bin/python" -m pytest "$@"
