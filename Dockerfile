# syntax=docker/dockerfile:1
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first: this layer is reused until pyproject.toml or constraints.txt change.
COPY pyproject.toml constraints.txt ./
RUN mkdir -p service && touch service/__init__.py \
    && pip install --constraint constraints.txt ".[postgres]" \
    && pip uninstall -y mscc-cds

# The code runs from /app (python -m service), so rules/ and fhir_examples/ sit where the service looks.
COPY service ./service
COPY authoring ./authoring
COPY fhir_examples ./fhir_examples
COPY rules ./rules
RUN useradd --system --uid 10001 --home-dir /app cds \
    && mkdir -p /app/var && chown cds /app/var

USER 10001
# Every folder the service writes to is a volume, so `docker run --read-only` works as it is: /app/var holds the
# SQLite file, the decision journal and the replay table beside it; /tmp the metrics folder of the workers.
VOLUME ["/app/var", "/tmp"]
EXPOSE 8080
# rules/ can be replaced by a mounted folder: -v "$PWD/rules:/app/rules:ro" (a broken rule set stops start-up).
ENV MSCC_RULES_DIR=/app/rules \
    MSCC_DATABASE_URL=sqlite:////app/var/mscc-cds.sqlite3
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["python", "-m", "service", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
