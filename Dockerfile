# syntax=docker/dockerfile:1
#
# shipyard server image.
#
#   docker build -t shipyard .
#   docker run -p 8080:8080 -v shipyard-data:/data shipyard
#   docker run -p 8080:8080 -e SHIPYARD_DB_URL=postgresql+psycopg://user@db:5432/shipyard shipyard
#
# Stage 1 builds the package and its dependencies into a virtualenv; stage 2 copies only that
# virtualenv onto a clean slim image (no build tools, no source tree, no pip cache).

FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src

# A regular (non-editable) install: the venv holds everything and needs nothing from /src.
# The quotes stop the shell from reading [postgres,redis] as a glob. Redis: rate limits and
# A/B stickiness across replicas, and the online feature store (SHIPYARD_REDIS_URL).
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install ".[postgres,redis]"


FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="shipyard" \
      org.opencontainers.image.description="Track, register, gate, serve, roll out and monitor ML models." \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SHIPYARD_HOME=/data

RUN groupadd --system --gid 10001 shipyard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin shipyard \
    && mkdir -p /data \
    && chown 10001:10001 /data

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]

EXPOSE 8080

# No curl in slim images: ask the readiness route with the standard library. urlopen raises on
# a non-2xx answer (503 while endpoints are still loading) or no answer, so the exit code is 1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=4)"]

ENTRYPOINT ["shipyard"]
CMD ["server", "--host", "0.0.0.0", "--port", "8080"]
