# syntax=docker/dockerfile:1
# warmcache's image: the api, the warmer and the data generator as static binaries, and nothing
# else: no shell, no package manager, a non-root user. Kubernetes picks the binary with
# `command` (deploy/k8s); `docker run` starts the api.
#   docker build -t warmcache .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/api ./cmd/warmer ./cmd/seed

FROM scratch
# CA certificates, for rediss:// and sslmode=verify-full. Time zones are compiled into the binaries.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/api /out/warmer /out/seed /
USER 65532:65532
EXPOSE 8000 9091
ENTRYPOINT ["/api"]
