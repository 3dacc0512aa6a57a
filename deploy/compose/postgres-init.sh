#!/bin/sh
# Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d):
# one role and one database per service, each with the postgis extension. The roles'
# passwords come from the environment (see docker-compose.yml); the superuser's from a secret.
set -eu

for svc in grid inspection population notify; do
  var="$(echo "${svc}" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  eval "password=\${${var}:?${var} is not set}"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
       -v role="${svc}" -v password="${password}" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
SQL
  # postgis is not a trusted extension: the superuser creates it, the owner uses it.
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname "${svc}" <<'SQL'
CREATE EXTENSION IF NOT EXISTS postgis;
SQL
done
