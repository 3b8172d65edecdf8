# Node 24 LTS from the npm registry's `node` package, kept in the ignored .tools/ (machines ship Node 20, EOL).
NODE_VERSION := 24.21.0
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/node_modules/.bin:$(PATH)

TESTS := "core/**/*.test.ts" "cli/**/*.test.ts"

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

test: build fixtures oracles
	node --test --test-reporter=spec $(TESTS)

lint: deps
	npx tsc -p tsconfig.json --noEmit
	npx eslint .
	npx prettier --check .

bench: build
	node bench/funcproof.bench.ts
	node bench/disasm.bench.ts

clean:
	rm -rf dist core/testdata/out
