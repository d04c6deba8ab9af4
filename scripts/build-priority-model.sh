#!/usr/bin/env bash
# Build the shipped priority model (ingest/priority/model.json.gz) from the labelled data
# in the repository. Reproducible: fixed seeds and a gzip without a timestamp, so
# building twice writes the same bytes with the same scikit-learn.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m ingest.priority.training ingest/priority/model.json.gz
