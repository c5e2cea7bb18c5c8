# The two commands of the README:  `make serve`  and  `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin

.PHONY: serve test install system-packages codegen

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

# Everything: generated code up to date, then the whole suite (SQLite and PostgreSQL, schemathesis, fakes),
# on two pytest-xdist workers (each with its own databases, fakes and SMTP sink).
test: install
	$(BIN)/python -m codegen --check
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2

codegen: install
	$(BIN)/python -m codegen
