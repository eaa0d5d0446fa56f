FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY core ./core
COPY adapters ./adapters
COPY storage ./storage
COPY scheduler ./scheduler
RUN pip install . && useradd --create-home --uid 10001 buddy

USER buddy
ENV HTTP_HOST=0.0.0.0 HTTP_PORT=3000 SHUTDOWN_GRACE=20
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"HTTP_PORT\", \"3000\")}/healthz', timeout=4)" || exit 1
# SIGTERM: a clean stop within SHUTDOWN_GRACE. Allow the container longer than that before
# SIGKILL: docker-compose.yml has stop_grace_period 25s; with `docker run` pass
# --stop-timeout 25 (its default, 10 s, is too short); Kubernetes' default of 30 s fits.
STOPSIGNAL SIGTERM
CMD ["interview-buddy", "run"]
