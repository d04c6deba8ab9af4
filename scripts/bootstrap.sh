#!/usr/bin/env bash
# Create ./.venv and install mail2case into it (services get their own venv: the
# top-level packages ingest, sla, storage, notifications have generic names).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
# Byte-compile the project (quick when nothing changed): every process start (the
# daemon, each piped message, each CLI command, each analysis worker) then reads cached
# bytecode instead of compiling some 130 modules (0.15 s), also where bytecode is not
# written at run time (PYTHONDONTWRITEBYTECODE, a read-only install).
.venv/bin/python -m compileall -q -j 0 mail2case ingest sla storage notifications migrations >/dev/null
