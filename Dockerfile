# syntax=docker/dockerfile:1

# Build stage: installs the package and its dependencies into a virtual environment.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir .

# Runtime stage: only Python and the virtual environment, run by an unprivileged user.
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_PATH=/data/seedream.db \
    HEARTBEAT_PATH=/data/heartbeat

RUN groupadd --system --gid 10001 seedream \
    && useradd --system --uid 10001 --gid seedream --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin seedream \
    && mkdir /data \
    && chown seedream:seedream /data

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

# The SQLite database and the heartbeat live here: mount a named volume or a host folder writable by uid 10001.
VOLUME /data

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["seedream-bot", "health"]

CMD ["seedream-bot"]
