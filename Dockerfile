# Production image: `decabill serve` (migrates, then HTTP on 3200 and Socket.IO on 8082).
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 decabill

WORKDIR /app
COPY pyproject.toml README.md ./
COPY decabill ./decabill
COPY handlers ./handlers
COPY models ./models
COPY spec ./spec
COPY codegen ./codegen
RUN pip install --no-cache-dir . && mkdir -p /data /tmp/decabill-metrics && chown decabill /data /tmp/decabill-metrics

USER decabill
ENV DECABILL_DATA_DIR=/data \
    BILLING_INVOICE_PDF_STORAGE_PATH=/data/invoices \
    NODE_ENV=production \
    # one HTTP process per core; their metrics meet in one folder, served by the main process
    WEB_CONCURRENCY=0 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/decabill-metrics
EXPOSE 3200 8082
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3200/api/health', timeout=4).status == 200 else 1)"
ENTRYPOINT ["decabill"]
CMD ["serve"]
