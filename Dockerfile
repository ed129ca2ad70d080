# mcfault as a sidecar image: docs/docker.md says how to build and run it.
# The build stage runs scripts/container-build.sh, which CI also runs on the
# host, so the two cannot drift apart; and CI builds this file for real
# with podman (scripts/container-image.sh) and runs the image and the
# compose example (tests/container/run.sh).

FROM debian:12-slim AS build
WORKDIR /src
# The build dependencies first, in a layer of their own that survives
# source changes.
COPY scripts/container-build.sh scripts/
RUN scripts/container-build.sh --deps-only \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# Builds, installs under /out/usr/local, and fails when a shared library of
# the binary comes from a package that RUNTIME_PACKAGES below lacks.
RUN scripts/container-build.sh /out

FROM debian:12-slim
# The binary's shared libraries beyond libc (container-build.sh checks this
# list against ldd): libevent-2.1.so.7 and libyaml-0.so.2.
ARG RUNTIME_PACKAGES="libevent-2.1-7 libyaml-0-2"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends $RUNTIME_PACKAGES \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 mcfault \
    && useradd --uid 10001 --gid mcfault --no-create-home --no-log-init \
        --home-dir /nonexistent --shell /usr/sbin/nologin mcfault
COPY --from=build /out/usr/local/ /usr/local/
COPY conf/example.yaml /etc/mcfault/example.yaml

# Flags win over these, and these over the rule file's listen/upstream.
# MCFAULT_CONFIG is unset: without rules mcfault forwards everything as is.
ENV MCFAULT_LISTEN=0.0.0.0:11211 \
    MCFAULT_UPSTREAM=memcached:11211
# Numeric, so that a runtime can verify it is not root (runAsNonRoot).
USER 10001:10001
EXPOSE 11211
STOPSIGNAL SIGTERM
# 0 when mcfault answers on its port and reaches memcached behind it.
# (podman keeps it only in the docker format: podman build --format docker.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["mcfault", "--health", "127.0.0.1:11211"]
ENTRYPOINT ["mcfault"]
# No default arguments (and not the base image's "bash").
CMD []
