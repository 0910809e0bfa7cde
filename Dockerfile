# kayip-alarm: one image, several processes (api, relay, adapter --operator X, migrate).
# Not built in CI: the development machines have no Docker engine (see README).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alert_api ./alert_api
COPY schemas ./schemas
COPY services ./services
COPY geofence ./geofence
COPY operator_adapters ./operator_adapters
COPY migrations ./migrations
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KAYIP_ENVIRONMENT=production \
    KAYIP_HOST=0.0.0.0 \
    KAYIP_PORT=8080
RUN useradd --system --uid 10001 --home-dir /nonexistent kayip
COPY --from=build /opt/venv /opt/venv
USER kayip
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["kayip-alarm"]
CMD ["api"]
