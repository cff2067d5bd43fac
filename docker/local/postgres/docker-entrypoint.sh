#!/bin/sh
# The entrypoint of Tenantry's local PostgreSQL image: the part of the official `postgres` image's
# contract that compose.yaml and testcontainers rely on.
#
#   POSTGRES_PASSWORD, or POSTGRES_PASSWORD_FILE   the superuser's password; required unless
#                                                  POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_USER                                  the superuser (default postgres)
#   POSTGRES_DB                                    a database made on first start (default: the user)
#   POSTGRES_HOST_AUTH_METHOD                      for connections from other hosts (default scram-sha-256)
#   POSTGRES_INITDB_ARGS                           extra initdb arguments
#
# PGDATA is initialised on the first start only; later starts use what is there. Started as root,
# it prepares PGDATA (a fresh volume belongs to root) and runs the server as `postgres`.
# Not supported: /docker-entrypoint-initdb.d scripts and POSTGRES_INITDB_WALDIR.
set -eu

# `docker run image -c name=value` passes server options, as with the official image.
if [ "${1#-}" != "${1:-}" ]; then
    set -- postgres "$@"
fi

if [ "${1:-}" != "postgres" ]; then
    exec "$@"
fi

if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        echo "docker-entrypoint: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both" >&2
        exit 1
    fi
    POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
    export POSTGRES_PASSWORD
    unset POSTGRES_PASSWORD_FILE
fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA" "$(dirname "$PGDATA")"
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user="${POSTGRES_USER:-postgres}"
    database="${POSTGRES_DB:-$user}"
    method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$method" != trust ]; then
        echo "docker-entrypoint: the database is not initialised and no superuser password is set:" >&2
        echo "  set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    pwfile="$(mktemp)"
    trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    # Inside the container (Unix socket and loopback) connections are trusted, as in the official
    # image; from other hosts they use $method.
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments
    initdb --username="$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=trust --no-instructions ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA"
    rm -f "$pwfile"
    trap - EXIT
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all $method" >> "$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        quoted="$(printf '%s' "$database" | sed 's/"/""/g')"
        echo "CREATE DATABASE \"$quoted\"" | postgres --single -D "$PGDATA" postgres > /dev/null
    fi
    echo "docker-entrypoint: initialised $PGDATA; starting PostgreSQL"
fi

exec "$@"
