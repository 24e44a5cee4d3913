# RealTime Room Manager image: rrm-frontend (the default command) and rrm-archiver.
#   docker build --build-arg RRM_VERSION="$(git describe --tags --always --dirty)" -t rrm:latest .
#   docker run --rm rrm:latest --help                                    # rrm-frontend
#   docker run --rm --entrypoint rrm-archiver rrm:latest --help          # rrm-archiver
# Both are configured only through RRM_* environment variables (README "Configuration").
# scripts/image builds it and smoke-tests the result (README "Kubernetes").
#
# Build arguments, all optional:
#   RRM_VERSION             what --version and rrm_build_info report, normally `git describe --tags
#                           --always --dirty` of the checkout (the context has no .git; without it:
#                           "unknown")
#   DEBIAN_MIRROR           a Debian mirror for apt in both stages instead of the base image's
#   DEBIAN_SECURITY_MIRROR  (deb.debian.org), e.g. http://mirror.example/debian and
#                           http://mirror.example/debian-security; used only during the build, the
#                           image keeps the base image's sources

# --- build: the same Debian 12 packages scripts/lib/deps.sh installs for a local build.
# cmocka is needed to configure (the tests are part of the CMake project), not to run.
FROM debian:12 AS build
ARG DEBIAN_MIRROR=""
ARG DEBIAN_SECURITY_MIRROR=""
# APT_SRC: the base image's sources with the mirrors replaced, in a directory of its own that apt
# reads instead of /etc/apt/sources.list.d (the same lines in the runtime stage).
RUN APT_SRC=; if [ -n "$DEBIAN_MIRROR$DEBIAN_SECURITY_MIRROR" ]; then \
        mkdir /tmp/apt-src && APT_SRC="-o Dir::Etc::SourceParts=/tmp/apt-src" \
        && sed -e "s|^URIs: http://deb.debian.org/debian\$|URIs: ${DEBIAN_MIRROR:-http://deb.debian.org/debian}|" \
            -e "s|^URIs: http://deb.debian.org/debian-security\$|URIs: ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}|" \
            /etc/apt/sources.list.d/debian.sources >/tmp/apt-src/debian.sources; \
    fi \
    && apt-get $APT_SRC update \
    && DEBIAN_FRONTEND=noninteractive apt-get $APT_SRC install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libwebsockets-dev libwebsockets-evlib-ev libev-dev libhiredis-dev \
        default-libmysqlclient-dev libjansson-dev libcmocka-dev libjwt-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/* /tmp/apt-src
WORKDIR /src
COPY . .
ARG RRM_VERSION=""
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo ${RRM_VERSION:+"-DRRM_VERSION=$RRM_VERSION"} \
    && cmake --build /build -j"$(nproc)" --target rrm-frontend rrm-archiver rrm-token

# --- runtime: only the shared libraries the two binaries load. libwebsockets-evlib-ev is the
# plugin libwebsockets opens at run time (dlopen) for its libev event loop, so ldd does not
# list it; rrm-frontend needs it.
FROM debian:12-slim
ARG DEBIAN_MIRROR=""
ARG DEBIAN_SECURITY_MIRROR=""
RUN APT_SRC=; if [ -n "$DEBIAN_MIRROR$DEBIAN_SECURITY_MIRROR" ]; then \
        mkdir /tmp/apt-src && APT_SRC="-o Dir::Etc::SourceParts=/tmp/apt-src" \
        && sed -e "s|^URIs: http://deb.debian.org/debian\$|URIs: ${DEBIAN_MIRROR:-http://deb.debian.org/debian}|" \
            -e "s|^URIs: http://deb.debian.org/debian-security\$|URIs: ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}|" \
            /etc/apt/sources.list.d/debian.sources >/tmp/apt-src/debian.sources; \
    fi \
    && apt-get $APT_SRC update \
    && DEBIAN_FRONTEND=noninteractive apt-get $APT_SRC install -y --no-install-recommends \
        libwebsockets17 libwebsockets-evlib-ev libev4 libhiredis0.14 libjansson4 libmariadb3 \
        libjwt0 libssl3 \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/* /tmp/apt-src
# A fixed numeric user, so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --gid 10001 rrm \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin rrm
COPY --from=build /build/frontend/rrm-frontend /build/archiver/rrm-archiver \
    /build/tools/rrm-token /usr/local/bin/
USER 10001:10001
# WebSocket clients and the HTTP probes (/healthz, /readyz) share this port. The admin port
# (RRM_ADMIN_PORT, 9765: /metrics, /status) is deliberately not exposed, so that `docker run -P`
# does not publish it; publish it where it is safe, e.g. `-p 127.0.0.1:9765:9765`. Nor is the
# archiver's metrics port (RRM_METRICS_PORT, 9102: /metrics, /healthz).
EXPOSE 8765
# rrm-frontend runs as PID 1: it handles SIGTERM itself (the drain). The archiver's Deployment
# sets `command: [rrm-archiver]`.
ENTRYPOINT ["rrm-frontend"]
