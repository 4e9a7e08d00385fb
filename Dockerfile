# One process tree: granian with worker processes, the watcher inside each worker.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feedsvc ./feedsvc
RUN pip install --no-cache-dir . && useradd --system --home /app feedsvc && mkdir -p /app/data && chown feedsvc /app/data
COPY config ./config
COPY seeds ./seeds
USER feedsvc
ENV FEEDSVC_HOST=0.0.0.0
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["feedsvc", "serve"]
