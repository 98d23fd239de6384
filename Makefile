# warmcache: `make` lists the targets. `make run` and `make test` set up everything they need.
SHELL := /bin/bash
GO ?= go

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## start PostgreSQL and Redis, load demo data, run the product
	scripts/run

# go test reads the servers from TEST_DATABASE_URL and TEST_REDIS_URL; `scripts/servers exec`
# starts the servers (installing them, and Varnish and Chromium, when missing) and sets both. The Kubernetes manifests are a
# module of their own (deploy/k8s), checked without the race detector: no goroutines of ours run.
.PHONY: test
test: ## vet and run every test against real PostgreSQL, Redis, Varnish and Chromium, with the race detector, then image-test
	$(GO) vet ./...
	cd deploy/k8s && $(GO) vet ./...
	scripts/servers exec $(GO) test -race -count=1 -timeout 15m ./...
	cd deploy/k8s && $(GO) test -count=1 ./...
	$(MAKE) --no-print-directory image-test

.PHONY: bench
bench: ## run the benchmarks (generates 1M customers / 10M orders once, about a minute)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	scripts/servers exec $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 60m -v ./bench | grep -v '^=== \|^--- '

.PHONY: lint
lint: ## run golangci-lint (pinned in tools/go.mod; built on first use)
	$(GO) tool -modfile=tools/go.mod golangci-lint run ./...
	cd deploy/k8s && $(GO) tool -modfile=../../tools/go.mod golangci-lint run ./...

.PHONY: vuln
vuln: ## check dependencies for known vulnerabilities (needs the Go vulnerability database online)
	$(GO) tool -modfile=tools/go.mod govulncheck ./...

.PHONY: k8s-check
k8s-check: ## validate the Kubernetes manifests, the alerting rules (promtool) and the image files offline
	scripts/servers tools
	cd deploy/k8s && $(GO) test -count=1 ./...

.PHONY: servers
servers: ## install (if missing) and start the local PostgreSQL and Redis
	@scripts/servers up >/dev/null

.PHONY: servers-down
servers-down: ## stop the local PostgreSQL and Redis
	scripts/servers down

# The version every binary, the image and the metrics report: the release tag on HEAD (v0.2.0
# gives 0.2.0), else the coming release and the commit (0.2.0-dev.1a2b3c4d5e6f). The kustomize
# base references the release's image (deploy/k8s/base/kustomization.yaml, held to RELEASE by
# its test).
RELEASE := 0.2.0
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION ?= $(or $(shell git describe --tags --exact-match --match 'v*' 2>/dev/null | sed 's/^v//'),$(RELEASE)-dev.$(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown))
LDFLAGS := -s -w -X github.com/warmcache/warmcache/internal/build.version=$(VERSION) -X github.com/warmcache/warmcache/internal/build.revision=$(REVISION)

.PHONY: build
build: ## build the binaries into bin/, static, stamped with the version and commit
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

.PHONY: version
version: ## print the version make build stamps
	@echo $(VERSION)

# make image builds the image from make build's binaries, FROM scratch, with podman
# (deploy/image/Containerfile): no Docker daemon, nothing pulled. Its build context is a directory
# of its own holding the three binaries and the host's CA certificates, nothing else. The image's
# times are the commit's, so the same binaries give the same image. An image tag takes no '+'
# (semver build metadata): one in VERSION becomes '_' in the tag.
IMAGE ?= warmcache:$(subst +,_,$(VERSION))
IMAGE_CONTEXT := bin/image

.PHONY: image
image: build ## build the image warmcache:<version> with podman, FROM scratch, pulling nothing
	@scripts/servers image-tools
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)
	cp bin/api bin/warmer bin/seed /etc/ssl/certs/ca-certificates.crt $(IMAGE_CONTEXT)/
	podman build --pull=never --layers=false --format oci --timestamp $(or $(shell git log -1 --format=%ct 2>/dev/null),0) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		-f deploy/image/Containerfile -t $(IMAGE) $(IMAGE_CONTEXT)

# make image-test runs the image as Kubernetes would, against the servers of scripts/servers:
# the versions it reports, then the seed, migrations, the warmer and the api (scripts/image-test).
.PHONY: image-test
image-test: image ## run the image with podman against real PostgreSQL and Redis: versions, readiness, admin port
	scripts/servers exec scripts/image-test $(IMAGE)
