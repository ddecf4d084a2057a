#!/bin/sh
# Staging stand-ins for the client firm's databases: creates each database of $Q2C_DATABASES
# and loads its DDL from $Q2C_SYSTEMS_DIR (the project's copies of the firm's schemas) where
# there is one (the warehouse has none: the sync makes its schemas). Run once by the postgres
# image's entrypoint (/docker-entrypoint-initdb.d), as $POSTGRES_USER; idempotent all the same.
set -eu
systems="${Q2C_SYSTEMS_DIR:-/q2c/systems}"
for db in ${Q2C_DATABASES:?name the databases to create}; do
    exists=$(psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")
    if [ "$exists" != "1" ]; then
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$db\""
        if [ -f "$systems/$db.sql" ]; then
            psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d "$db" -f "$systems/$db.sql"
        fi
    fi
done
