#!/bin/sh
# Build local stand-ins for the three public images docker-compose.yaml uses (python:3.11-slim,
# postgres:16, redis:7) on a machine that reaches Debian's mirror and PyPI but not Docker Hub.
# They are Debian bookworm with its own python3.11, PostgreSQL and Redis, tagged with the public
# names so docker-compose.yaml runs unchanged. Needs root, debootstrap and a running dockerd.
#
#   sh deploy/offline/build-base-images.sh && docker build --network host -t fate-airflow:0.1.0 . \
#     && docker-compose up -d
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/fate-airflow-offline}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$WORK"
if [ ! -d "$WORK/rootfs/usr" ]; then
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,postgresql,redis-server,procps \
    bookworm "$WORK/rootfs" "$MIRROR"
fi
tar -C "$WORK/rootfs" -c . | docker import - fate-local/base:bookworm

mkdir -p "$WORK/python" "$WORK/postgres" "$WORK/redis"
# Trust the same CAs as this machine (a TLS-inspecting egress proxy in front of PyPI, for example).
cp /etc/ssl/certs/ca-certificates.crt "$WORK/python/ca.crt"
cat > "$WORK/python/Dockerfile" <<'DOCKERFILE'
FROM fate-local/base:bookworm
RUN python3 -m venv /opt/py
COPY ca.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/opt/py/bin:$PATH PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180
CMD ["python"]
DOCKERFILE
cp "$HERE/postgres-entrypoint.sh" "$WORK/postgres/entrypoint.sh"
cat > "$WORK/postgres/Dockerfile" <<'DOCKERFILE'
FROM fate-local/base:bookworm
COPY entrypoint.sh /entrypoint.sh
ENTRYPOINT ["/entrypoint.sh"]
DOCKERFILE
cat > "$WORK/redis/Dockerfile" <<'DOCKERFILE'
FROM fate-local/base:bookworm
CMD ["redis-server", "--protected-mode", "no", "--bind", "0.0.0.0"]
DOCKERFILE
docker build --network host -t python:3.11-slim "$WORK/python"
docker build --network host -t postgres:16 "$WORK/postgres"
docker build --network host -t redis:7 "$WORK/redis"
