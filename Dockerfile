# feedsvc: granian serving the feeds, the scheduler inside each worker. Two stages: wheels are
# built with the compilers of the build stage; the final image has no compiler, no pip cache,
# no sample seeds. Configuration comes from the environment only (FEEDSVC_*, see
# docs/configuration.md).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY feedsvc ./feedsvc
RUN python -m venv /opt/feedsvc && /opt/feedsvc/bin/pip install --no-compile .

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="feedsvc" \
      org.opencontainers.image.description="Atom, RSS and JSON feeds from a directory of Hexo-style seed files" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/feedsvc/feedsvc"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/feedsvc/bin:$PATH \
    FEEDSVC_HOST=0.0.0.0 FEEDSVC_PORT=8080 FEEDSVC_SEEDS=/seeds \
    FEEDSVC_DB=sqlite:////data/feedsvc.sqlite3 \
    PROMETHEUS_MULTIPROC_DIR=/data/metrics TMPDIR=/data/tmp HOME=/data
COPY --from=build /opt/feedsvc /opt/feedsvc
RUN groupadd --system --gid 10001 feedsvc \
    && useradd --system --uid 10001 --gid feedsvc --home-dir /data --no-create-home feedsvc \
    && mkdir -p /data /seeds && chown feedsvc:feedsvc /data
# Writes go only to /data (database, metrics): the root file system can be read-only.
VOLUME ["/data", "/seeds"]
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["feedsvc", "serve"]
