# Fittrack: `make run` starts the embedded server, `make test` runs everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup protos protos-check run up services services-stop services-status cluster cluster-stop cluster-status test lint bench grpcurl ghz tools oidc clean

GRPCURL_VERSION := v1.9.4
GHZ_VERSION := v0.93.0

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

protos: setup
	$(PY) scripts/gen_protos.py

protos-check: setup
	$(PY) scripts/gen_protos.py --check

run: setup
	$(PY) -m fittrack.app.server

# The production profile's services (PostgreSQL, Kafka, FerretDB) on loopback, data under ./var.
services:
	bash infra/services.sh start

services-stop:
	bash infra/services.sh stop

services-status:
	bash infra/services.sh status

# The highly available layout (infra/cluster/layout.toml): three network-namespace hosts with etcd,
# Patroni PostgreSQL, HAProxy, Kafka and FerretDB, data under ./var/cluster. See infra/cluster/README.md.
cluster:
	$(PYTHON) infra/cluster/cluster.py up

cluster-stop:
	$(PYTHON) infra/cluster/cluster.py down

cluster-status:
	$(PYTHON) infra/cluster/cluster.py status

# The server and a persister process against the running services.
up: setup services
	bash scripts/up.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# grpcurl is built from the Go module proxy: the e2e suite checks that it can
# list and call every service through reflection, as the README shows.
grpcurl: var/bin/grpcurl

var/bin/grpcurl:
	GOBIN=$(CURDIR)/var/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# ghz, a gRPC load tester no one here wrote: bench/view drives ViewMetric with it as well as with its own.
ghz: var/bin/ghz

var/bin/ghz:
	GOBIN=$(CURDIR)/var/bin go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

# Command-line tools the suite runs: pdftoppm (poppler-utils) turns downloaded PDF reports into images;
# prometheus and promtool (Debian's prometheus package, installed without starting its service) check
# ops/prometheus/ and scrape a running stack in tests/integration/test_prometheus.py; systemd-analyze
# (Debian's systemd, on any Debian host already) verifies ops/systemd/'s units.
tools:
	command -v pdftoppm >/dev/null || (apt-get update && apt-get install -y --no-install-recommends poppler-utils)
	sh scripts/install_prometheus.sh
	command -v systemd-analyze >/dev/null || (apt-get update && apt-get install -y --no-install-recommends systemd)

# The OpenID Provider the SSO tests run (oidc-provider, on the machine's Node.js), from package-lock.json.
oidc: infra/oidc/node_modules/.package-lock.json

infra/oidc/node_modules/.package-lock.json: infra/oidc/package.json infra/oidc/package-lock.json
	cd infra/oidc && npm ci --no-audit --no-fund

test: setup protos-check lint grpcurl ghz tools oidc services
	$(PY) -m pytest tests --durations=25

bench: setup ghz
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
