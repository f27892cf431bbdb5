# ServiceScheduler API image: `docker compose up` (see docker-compose.yml).
FROM python:3.11-slim

# MALLOC_ARENA_MAX=2: glibc gives each thread that allocates an arena of its own (up to 8 per
# core); the scheduler's and consumer's threads left free memory in a dozen of them. In the
# 30-minute soak (docs/reliability.md) the free memory kept in the arenas grew 3.5 MiB with it
# against 12.7 MiB without, RSS +14 % against +25 %.
# GC_FREEZE_ON_START: the start-up objects are frozen once (gc.freeze()), so Python's full
# collections no longer walk them while every thread waits: ~60 ms for a started service,
# enough to start a due run late (docs/benchmarks.md, 12).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MALLOC_ARENA_MAX=2 \
    GC_FREEZE_ON_START=true

WORKDIR /app

# Requirements first: this layer is rebuilt only when the pins change, not on every code edit.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app/data \
    && chown app:app /app/data

# Code stays root-owned (read-only for the service); only /app/data is writable.
COPY . .

USER app
VOLUME ["/app/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

STOPSIGNAL SIGTERM
# 0.0.0.0 inside the container only; docker-compose.yml publishes it on the host's 127.0.0.1.
# --http: a deadline for each request head, so that slow clients cannot hold connections
# (servicescheduler/uvicorn_protocol.py; devtools/serve.py serves the same command line).
CMD ["uvicorn", "server:app", "--host", "0.0.0.0", "--port", "8000", "--workers", "1", "--http", "servicescheduler.uvicorn_protocol:HeadTimeoutH11Protocol"]
