# probed: synthetic probing and SLO daemon, as a container image.
#
#   docker build -t probed .
#   docker run --rm -p 9470:9470 --read-only -e API_TOKEN=... probed
#
# Two stages on Debian bookworm (its python3 is 3.11): the first builds every wheel and installs
# them into a virtualenv at /opt/probed; the second is bookworm-slim with Debian's python3 and
# ca-certificates, that virtualenv and the bundled files, running as the fixed non-root UID 65532.
# Nothing but /var/lib/probed (a volume) is written, so `--read-only` works.
#
# Wheels come from PyPI in the first stage. Behind an HTTPS-intercepting proxy, hand pip the proxy's
# CA as a build secret: `--secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt` (it never reaches
# a layer). Without network, put every wheel into ./wheels of the build context first, probed's own
# included, built by a Python of the image's version (bookworm's 3.11.2: environment markers differ
# between 3.11 patch releases): the first stage then installs from that directory only.
# scripts/build-image builds and checks this image with buildah.

ARG BASE_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------- build
FROM ${BASE_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*

# .dockerignore lets only the package, its metadata, the bundled config/rules/dashboards and
# ./wheels through, so this layer changes only when one of those does.
COPY . /src
WORKDIR /src

RUN --mount=type=secret,id=pip-ca,required=false \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && python3 -m venv /opt/probed \
 && if [ -n "$(find wheels -maxdepth 1 -name 'probed-*.whl' 2>/dev/null)" ]; then \
      echo "build: installing from the context's prebuilt wheels/ only"; \
    else \
      /opt/probed/bin/pip wheel --wheel-dir wheels . ; \
    fi \
 && /opt/probed/bin/pip install --no-index --find-links wheels probed \
 && /opt/probed/bin/pip uninstall -y pip setuptools \
 && /opt/probed/bin/probed --version

# The bundled files, staged so the runtime stage copies them in one layer. Each one must be there:
# a missing config, rule file or dashboard (an unmatched glob stays literal) fails the build.
RUN install -D -m 0644 probes.yaml /stage/etc/probed/probes.yaml \
 && install -D -m 0644 -t /stage/usr/share/probed/dashboards/ grafana/dashboards/*.json \
 && install -D -m 0644 -t /stage/usr/share/probed/rules/ prometheus/probed-rules.yaml

# -------------------------------------------------------------------------------------------- runtime
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="probed" \
      org.opencontainers.image.description="Synthetic probing and SLO monitoring daemon with a Prometheus scrape target" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 65532 probed \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/probed --no-create-home \
            --shell /usr/sbin/nologin probed \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/probed

COPY --from=build /opt/probed /opt/probed
COPY --from=build /stage/ /

ENV PATH=/opt/probed/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROBED_STATE_DIR=/var/lib/probed
VOLUME ["/var/lib/probed"]
WORKDIR /var/lib/probed
USER 65532:65532
EXPOSE 9470

# No curl in the image: the virtualenv's own python asks /-/healthy (urlopen raises on non-2xx).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/opt/probed/bin/python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9470/-/healthy', timeout=4)"]

# Exec form: probed is PID 1 and gets SIGTERM itself (it drains in-flight probes, then exits).
ENTRYPOINT ["/opt/probed/bin/probed"]
CMD ["run", "--config", "/etc/probed/probes.yaml", "--listen", "0.0.0.0:9470"]
