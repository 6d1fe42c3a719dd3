#!/bin/sh
# Stand-in for the official postgres image (deploy/offline): create the cluster, user and database
# from POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB on first start, then run the server.
set -e
PGDATA=/var/lib/postgresql/data
BIN=$(ls -d /usr/lib/postgresql/*/bin | head -1)
mkdir -p $PGDATA /run/postgresql && chown -R postgres:postgres $PGDATA /run/postgresql
if [ ! -s $PGDATA/PG_VERSION ]; then
  echo "$POSTGRES_PASSWORD" > /tmp/pw
  chown postgres /tmp/pw
  su postgres -c "$BIN/initdb -D $PGDATA -U $POSTGRES_USER --pwfile=/tmp/pw --auth-host=md5 --auth-local=trust"
  echo "host all all 0.0.0.0/0 md5" >> $PGDATA/pg_hba.conf
  # Like the official image: the init server listens on the unix socket only.
  su postgres -c "$BIN/pg_ctl -D $PGDATA -w start -o \"-c listen_addresses=''\""
  su postgres -c "psql -U $POSTGRES_USER -d postgres -c 'CREATE DATABASE $POSTGRES_DB'"
  su postgres -c "$BIN/pg_ctl -D $PGDATA -w stop"
fi
exec su postgres -c "$BIN/postgres -D $PGDATA -c listen_addresses='*' -c max_connections=300"
