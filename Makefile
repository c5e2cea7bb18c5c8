# The two commands of the README:  `make serve`  and  `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin

.PHONY: serve test install system-packages codegen node-check client client-check client-e2e lint-spec api-docs

$(BIN)/decabill: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $@

install: system-packages $(BIN)/decabill

# The invoice PDFs embed DejaVu Sans (PDF/A needs embedded fonts); Debian ships it as fonts-dejavu-core.
system-packages:
	@test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || \
	  { apt-get update -qq && apt-get install -y -qq fonts-dejavu-core >/dev/null; }

# Embedded default: SQLite under ./data, users mode, a JWT secret generated once into ./data (mode 0600).
serve: install
	@mkdir -p data && test -s data/jwt-secret || (umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_hex(32))" > data/jwt-secret)
	AUTHENTICATION_METHOD=$${AUTHENTICATION_METHOD:-users} JWT_SECRET=$${JWT_SECRET:-$$(cat data/jwt-secret)} $(BIN)/decabill serve

# Everything: generated code up to date and the spec lint-clean, then the whole Python suite (SQLite and
# PostgreSQL, schemathesis, fakes) on two pytest-xdist workers (each with its own databases, fakes and SMTP
# sink), then the TypeScript client's end-to-end test against a real server.
test: install client-check lint-spec api-docs
	$(BIN)/python -m codegen --check
	$(BIN)/ruff check -q .
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2
	$(MAKE) --no-print-directory client-e2e

# --- TypeScript client and OpenAPI tooling (Node.js >= 20.19 and npm from the machine) ------------------
TS_CLIENT = clients/typescript
OPENAPI_TOOLS = tools/openapi
NPM_CI = npm ci --no-audit --no-fund --loglevel=error
export REDOCLY_TELEMETRY = off
export REDOCLY_SUPPRESS_UPDATE_NOTICE = true

node-check:
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' || \
	  { echo "Node.js >= 20.19 with npm is needed for the TypeScript client and the spec linter" >&2; exit 1; }

$(TS_CLIENT)/node_modules/.package-lock.json: $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && $(NPM_CI)

$(OPENAPI_TOOLS)/node_modules/.package-lock.json: $(OPENAPI_TOOLS)/package-lock.json
	cd $(OPENAPI_TOOLS) && $(NPM_CI)

# Regenerate the committed client from spec/openapi.yaml (run after every spec change, commit the result).
client: node-check $(TS_CLIENT)/node_modules/.package-lock.json
	rm -rf $(TS_CLIENT)/src/generated
	cd $(TS_CLIENT) && npx openapi-ts
	cd $(TS_CLIENT) && npx tsc --noEmit -p tsconfig.json

# CI: the committed client is what the current spec generates, and it type-checks in strict mode.
client-check: node-check $(TS_CLIENT)/node_modules/.package-lock.json
	rm -rf build/client-check
	cd $(TS_CLIENT) && OPENAPI_TS_OUTPUT=../../build/client-check npx openapi-ts >/dev/null
	@diff -r -u $(TS_CLIENT)/src/generated build/client-check || \
	  { echo "clients/typescript is out of date with spec/openapi.yaml: run 'make client' and commit" >&2; exit 1; }
	cd $(TS_CLIENT) && npm run -s typecheck

# The client's end-to-end test: starts the fakes and `decabill serve`, then talks to them through the client.
client-e2e: install node-check $(TS_CLIENT)/node_modules/.package-lock.json
	cd $(TS_CLIENT) && DECABILL_PYTHON=$(abspath $(BIN))/python npm run -s test:e2e

lint-spec: node-check $(OPENAPI_TOOLS)/node_modules/.package-lock.json
	cd $(OPENAPI_TOOLS) && npm run -s lint

# Static HTML reference of the API, rendered from the spec: build/api-docs/index.html.
api-docs: node-check $(OPENAPI_TOOLS)/node_modules/.package-lock.json
	cd $(OPENAPI_TOOLS) && npm run -s docs

codegen: install
	$(BIN)/python -m codegen
