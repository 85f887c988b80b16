#!/bin/bash
# Runs once, on the first start of an empty PostgreSQL volume (docker-entrypoint-initdb.d).
# Creates:
#   learnflow_owner  owns the database and its schema; `learnflow migrate` connects as it
#   learnflow_app    the server's role: LOGIN only. Migration 0003 grants it SELECT/INSERT/...
#                    and only SELECT+INSERT on audit_log and events (append-only by privilege).
#                    0003 creates the role itself only when the migrating user may create
#                    roles; learnflow_owner may not, so it is created here with its password.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_pw="$LEARNFLOW_OWNER_DB_PASSWORD" -v app_pw="$LEARNFLOW_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE learnflow_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_pw';
CREATE ROLE learnflow_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'app_pw';
CREATE DATABASE learnflow OWNER learnflow_owner;
REVOKE ALL ON DATABASE learnflow FROM PUBLIC;
SQL
# PostgreSQL 15: `public` belongs to pg_database_owner (learnflow_owner), and PUBLIC may not
# create in it; nothing else to do.
