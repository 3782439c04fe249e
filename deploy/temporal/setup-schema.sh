#!/bin/sh
# Temporal's persistence on PostgreSQL: create (if missing) and bring up to date the two
# databases, `temporal` and `temporal_visibility`. Run by the one-shot temporal-schema service
# (image temporalio/admin-tools, same version as the server) before every server start; an
# up-to-date schema is left as it is. On a server upgrade this is the step that migrates it.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
PORT="${DB_PORT:-5432}"
SCHEMA=/etc/temporal/schema/postgresql/v12

echo "waiting for PostgreSQL at $POSTGRES_SEEDS:$PORT ..."
tries=0
until nc -z -w 2 "$POSTGRES_SEEDS" "$PORT"; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "PostgreSQL did not answer"; exit 1; }
  sleep 1
done

for db in temporal temporal_visibility; do
  sub=temporal
  [ "$db" = temporal_visibility ] && sub=visibility
  tool="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -p $PORT -u $POSTGRES_USER --db $db"
  $tool create 2>/dev/null || echo "database $db exists"
  # setup-schema -v 0.0 only creates the version table when it is missing.
  $tool setup-schema -v 0.0 2>/dev/null || true
  $tool update-schema -d "$SCHEMA/$sub/versioned"
done
echo "Temporal schema is current"
