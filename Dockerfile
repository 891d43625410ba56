# Dockerfile: build stratosd from source and ship it in a small non-root
# runtime image (DESIGN §10).
#
#   docker build -t REGISTRY/stratosd:TAG .
#
# Both stages use Debian 12 (bookworm), the distribution the project is
# developed and tested on, so the runtime libraries are the ones the build
# linked against.

FROM debian:bookworm AS build

# Unpinned on purpose: bookworm's security updates replace these in place,
# and a pinned version disappears from the mirror when that happens.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        cmake \
        gcc \
        libc6-dev \
        libcurl4-openssl-dev \
        libgnutls28-dev \
        libjansson-dev \
        libmicrohttpd-dev \
        libssl-dev \
        libxml2-dev \
        libyaml-dev \
        make \
        pkg-config \
    && rm -rf /var/lib/apt/lists/*

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .

# Release build of the daemon target only: tests run in CI, not here, so
# STRATOS_BUILD_TESTS=OFF and neither cmocka nor python3 is needed. The binary
# is looked up rather than assumed at build/stratosd, so the build tree's
# layout may change without breaking this.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTRATOS_BUILD_TESTS=OFF \
    && cmake --build build --target stratosd --parallel "$(nproc)" \
    && bin=$(find build -type f -name stratosd -perm -u+x -print -quit) \
    && test -n "$bin" \
    && install -D -m 0755 "$bin" /out/usr/local/bin/stratosd \
    && strip /out/usr/local/bin/stratosd

FROM debian:bookworm-slim

# Runtime libraries only: no compiler, no headers, no shell tools beyond
# what the slim base has.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libcurl4 \
        libgnutls30 \
        libjansson4 \
        libmicrohttpd12 \
        libssl3 \
        libxml2 \
        libyaml-0-2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 stratos \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin stratos

COPY --from=build /out/usr/local/bin/stratosd /usr/local/bin/stratosd

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

# 8443: extender and admission webhooks (HTTPS); 8080: metrics and health.
EXPOSE 8443 8080

ENTRYPOINT ["/usr/local/bin/stratosd"]
CMD ["serve"]
