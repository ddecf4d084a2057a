FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
COPY connect ./connect
COPY deploy ./deploy
RUN pip install --no-cache-dir . \
    && mkdir -p /var/lib/q2c && chown nobody /var/lib/q2c  # the worker's Q2C_HOME (its RocksDB tables)
USER nobody
ENTRYPOINT []
