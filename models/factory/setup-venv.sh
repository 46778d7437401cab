#!/usr/bin/env bash
# Creates (or refreshes) the model factory's Python environment in models/factory/.venv from requirements.lock.
# Idempotent: does nothing when the venv already matches the lock. The daemon never needs this; only the factory does.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
lock_sum=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat .venv/.lock-sha256 2>/dev/null)" = "$lock_sum" ]; then
  exit 0
fi
"$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
echo "$lock_sum" > .venv/.lock-sha256
