# The two commands a user needs:
#   make serve   run the gateway on this machine (local backend, 127.0.0.1:8210)
#   make test    install everything the tests need, then run the whole suite
CACHE ?= $(or $(CODEX_MCP_CACHE),$(HOME)/.cache/codex-mcp)
export CODEX_MCP_CACHE := $(CACHE)

.PHONY: serve test deps build lint crds manifests

serve:
	scripts/install-codex.sh
	CODEX_BIN="$${CODEX_BIN:-$(CACHE)/bin/codex}" cargo run --release -- serve

deps:
	scripts/install-test-deps.sh

test: deps
	scripts/test.sh

build:
	cargo build --release --all-targets

lint:
	scripts/lint.sh

# The CRD as this build prints it, for kubectl and for the chart.
crds:
	cargo run --quiet -- crd > crds/codexagents.codexmcp.dev.yaml
	cp crds/codexagents.codexmcp.dev.yaml charts/codex-mcp/crds/codexagents.codexmcp.dev.yaml

# manifests/: the chart rendered with its defaults, for `kubectl apply -f manifests/`.
manifests: crds
	scripts/render-manifests.sh
