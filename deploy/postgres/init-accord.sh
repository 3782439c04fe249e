#!/bin/sh
# Roles and databases for the compose file, run once by the postgres image on an empty data
# directory (/docker-entrypoint-initdb.d). On a managed PostgreSQL run the same statements
# yourself (docs/operations.md, "Database roles").
#
#   accord       owns the application database and runs `accord migrate` (no superuser)
#   accord_app   what `accord api` and `accord worker` connect as: may only read and insert
#                the audit trail; the migrations grant it the rest. Created here by `accord`,
#                which so holds ADMIN OPTION on it (migration 005 sets a parameter on it).
#   temporal     owns Temporal's two databases (created by the temporal-schema service)
set -eu

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
     -v accord_password="$OWNER_DB_PASSWORD" \
     -v accord_app_password="$APP_DB_PASSWORD" \
     -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE accord LOGIN CREATEROLE PASSWORD :'accord_password';
CREATE DATABASE accord OWNER accord ENCODING 'UTF8' TEMPLATE template0;
SET ROLE accord;
CREATE ROLE accord_app LOGIN PASSWORD :'accord_app_password';
RESET ROLE;
GRANT SET ON PARAMETER accord.view TO accord;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
SQL
