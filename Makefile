# Node 24 LTS from the npm registry's `node` package, kept in the ignored .tools/ (machines ship Node 20, EOL).
NODE_VERSION := 24.21.0
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/node_modules/.bin:$(PATH)

TESTS := "core/**/*.test.ts" "cli/**/*.test.ts" "crds/**/*.test.ts" "operator/**/*.test.ts" "agent/**/*.test.ts" "proto/**/*.test.ts"

.PHONY: build test lint bench clean tools deps fixtures oracles

build: deps
	npx tsc -p tsconfig.json

tools: $(TOOLS)/node_modules/.bin/node
$(TOOLS)/node_modules/.bin/node:
	mkdir -p $(TOOLS)
	cd $(TOOLS) && [ -f package.json ] || echo '{"private":true}' > $(TOOLS)/package.json
	npm install --prefix $(TOOLS) --no-audit --no-fund --save-exact node@$(NODE_VERSION)
	@$(TOOLS)/node_modules/.bin/node --version

deps: tools node_modules/.installed
node_modules/.installed: package-lock.json | tools
	npm ci --no-audit --no-fund
	touch $@

# Test binaries compiled from the C sources under core/testdata (diff pairs, ELF32, big-endian samples).
fixtures:
	$(MAKE) -C core/testdata

# Python securesystemslib: an independent DSSE implementation the tests verify our envelopes with.
oracles: $(TOOLS)/venv/.installed
$(TOOLS)/venv/.installed: core/dsse/testdata/requirements.txt
	python3 -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/pip install -q -r core/dsse/testdata/requirements.txt
	touch $@

test: build fixtures oracles rekor-server
	node --test --test-reporter=spec --test-timeout=900000 $(TESTS)

lint: deps
	npx tsc -p tsconfig.json --noEmit
	npx eslint .
	npx prettier --check .

bench: build
	node bench/funcproof.bench.ts
	node bench/disasm.bench.ts
	node bench/symbolize.bench.ts
	node --expose-gc bench/agent-memory.bench.ts
	node --expose-gc bench/hot-index.bench.ts
	node bench/ingest.bench.ts
	node bench/delta.bench.ts
	node bench/webhook.bench.ts
	node bench/graph.bench.ts
	node bench/verify-image.bench.ts

# Root: bpftrace and perf sample the whole machine; keep it otherwise idle while this runs (~2 min).
.PHONY: bench-agent
bench-agent: build
	node bench/agent-overhead.bench.ts --reps 5 --seconds 5

clean:
	rm -rf dist core/testdata/out

# CRDs: one schema source per kind (crds/schema/) generates the CRD YAML (crds/ and the chart), the TypeScript
# types (operator/api/generated/) and docs/crds.md. crds-check fails when the committed files drift from it.
CRD_OUTPUTS := 'crds/*.yaml' charts/stella/crds operator/api/generated docs/crds.md

.PHONY: crds crds-check

crds: deps
	node crds/gen.ts

crds-check: crds
	@git diff --exit-code --stat -- $(CRD_OUTPUTS) && \
	  test -z "$$(git ls-files --others --exclude-standard -- $(CRD_OUTPUTS))" || { \
	  echo "crds-check: generated CRDs, types or docs differ from crds/schema/ (or are not committed):" >&2; \
	  git status --short -- $(CRD_OUTPUTS) >&2; \
	  echo "run 'make crds' and commit the result" >&2; exit 1; }

# Wire contract: proto/stella/**/*.proto generates the TypeScript types in proto/gen/ (proto/gen.sh).
# proto-check fails when the committed generated files drift from the .proto sources.
PROTO_OUTPUTS := proto/gen

.PHONY: proto proto-check

proto: deps
	proto/gen.sh

proto-check: proto
	@git diff --exit-code --stat -- $(PROTO_OUTPUTS) && \
	  test -z "$$(git ls-files --others --exclude-standard -- $(PROTO_OUTPUTS))" || { \
	  echo "proto-check: generated types in proto/gen/ differ from proto/stella/ (or are not committed):" >&2; \
	  git status --short -- $(PROTO_OUTPUTS) >&2; \
	  echo "run 'make proto' and commit the result" >&2; exit 1; }

# e2e: a real control plane (etcd + kube-apiserver as local processes, RBAC on; no Docker needed). See e2e/README.md.
E2E_CACHE := $(if $(STELLA_E2E_CACHE),$(STELLA_E2E_CACHE),$(CURDIR)/e2e/.cache)
E2E_TESTS := "e2e/**/*.e2e.test.ts"
E2E_RUN := PATH="$(E2E_CACHE)/bin:$$PATH" node --test --test-reporter=spec --test-concurrency=1 $(E2E_TESTS)
KIND_CLUSTER := stella-e2e

.PHONY: e2e-tools cluster-up cluster-down e2e e2e-kind demo

# The main job on this machine (root: bpftrace): control plane, operator, agent, a stripped workload and its
# FuncProof, three VexStatements flipping on runtime evidence. Ctrl-C leaves nothing running.
demo: build e2e-tools
	PATH="$(E2E_CACHE)/bin:$$PATH" node e2e/demo/demo.ts

# kube-apiserver, etcd, kubectl, helm built from Go modules into e2e/.cache/bin (cold ~17 min, warm 0.1 s).
e2e-tools:
	e2e/tools/build.sh

# The Rekor v2 transparency log (rekor-tiles, POSIX backend) the core/tlog tests run; Go 1.27 toolchain from the
# module proxy. Cold ~3 min (toolchain and modules downloaded), warm 0.1 s. See docs/transparency-log.md.
.PHONY: rekor-server
rekor-server:
	e2e/tools/build.sh rekor-server

# A long-running local cluster for people: eval "$$(node e2e/cluster.ts up)" sets KUBECONFIG and PATH.
cluster-up: deps
	node e2e/cluster.ts up

cluster-down: deps
	node e2e/cluster.ts down

e2e: deps e2e-tools fixtures
	$(E2E_RUN)

# The same tests against a kind cluster (needs Docker + kind + kubectl): the harness uses STELLA_E2E_KUBECONFIG
# instead of starting a control plane.
e2e-kind: deps
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER)
	mkdir -p $(E2E_CACHE)
	kind get kubeconfig --name $(KIND_CLUSTER) > $(E2E_CACHE)/kind-kubeconfig
	STELLA_E2E_KUBECONFIG=$(E2E_CACHE)/kind-kubeconfig $(E2E_RUN)
