#!/usr/bin/env bash
# Install and run the whole service with embedded defaults: SQLite, the embedded
# Kafka-protocol broker and the operator simulator. Prints where to look.
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/kayip-alarm serve "$@"
