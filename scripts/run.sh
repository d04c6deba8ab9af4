#!/usr/bin/env bash
# Set up and run the daemon on its embedded defaults: SQLite file ./mail2case.db,
# SMTP on 127.0.0.1:2525, outgoing mail into ./outgoing (a maildir).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/mail2case run "$@"
