# syntax=docker/dockerfile:1
# warmcache's image, built from source with Docker: the api, the warmer and the data generator as
# static binaries, and nothing else: no shell, no package manager, a non-root user. Kubernetes
# picks the binary with `command` (deploy/k8s); `docker run` starts the api. Stamp it as make
# build stamps the binaries, or --version says (devel):
#   docker build --build-arg VERSION=$(make version) --build-arg REVISION=$(git rev-parse HEAD) \
#     -t warmcache:$(make version) .
# make image builds the same image without Docker and without pulling anything, from the
# binaries of make build (deploy/image/Containerfile).
FROM golang:1.26-bookworm AS build
ARG VERSION
ARG REVISION
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X github.com/warmcache/warmcache/internal/build.version=${VERSION} -X github.com/warmcache/warmcache/internal/build.revision=${REVISION}" \
    -o /out/ ./cmd/api ./cmd/warmer ./cmd/seed

FROM scratch
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.title="warmcache" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="github.com/warmcache/warmcache" \
      org.opencontainers.image.licenses="Apache-2.0"
# CA certificates, for rediss:// and sslmode=verify-full. Time zones are compiled into the binaries.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/api /out/warmer /out/seed /
USER 65532:65532
# The api (8000), its admin listener (9090), the warmer's admin listener (9091).
EXPOSE 8000 9090 9091
ENTRYPOINT ["/api"]
