# The two commands the README opens with: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint bench chromium poppler postgres scorm-again clean

run: $(STAMP)
	$(BIN)/coursegen serve

# Two workers, one per core; a test file stays on one worker (its fixtures, its server).
test: $(STAMP) chromium poppler postgres scorm-again
	$(BIN)/pytest -n 2 --dist loadfile

# Lint, format and type checks; part of CI.
check: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m coursegen_dev.bench

# The environment is rebuilt when the declared or pinned dependencies change.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Browser tests drive Debian's chromium; Playwright's own download cannot work offline.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install -y chromium" >&2; exit 1; fi; }

# The HTML export's test prints it to a PDF and reads the pages back with pdftotext.
poppler:
	@command -v pdftotext >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq poppler-utils; \
	  else echo "the export tests need Debian's poppler-utils: sudo apt-get install -y poppler-utils" >&2; exit 1; fi; }

# The SCORM runtime test's LMS is scorm-again from npm, pinned by tests/scorm/package-lock.json
# and installed under the ignored .cache/npm/; installed again when the pin changes.
SCORM_AGAIN := .cache/npm/node_modules/scorm-again/package.json
scorm-again: $(SCORM_AGAIN)
$(SCORM_AGAIN): tests/scorm/package.json tests/scorm/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq npm; \
	  else echo "the SCORM runtime test needs npm: sudo apt-get install -y npm" >&2; exit 1; fi; }
	mkdir -p .cache/npm
	cp tests/scorm/package.json tests/scorm/package-lock.json .cache/npm/
	npm ci --prefix .cache/npm --no-audit --no-fund --ignore-scripts
	touch $@

# PostgreSQL tests start a throwaway server of their own from Debian's binaries
# (tests/pgserver.py). Installing them must not create or start the packaged `main`
# cluster on port 5432, hence the createcluster.d drop-in for the install's duration.
PG_NOMAIN := /etc/postgresql-common/createcluster.d/coursegen-no-main-cluster.conf
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    mkdir -p "$$(dirname $(PG_NOMAIN))" && echo 'create_main_cluster = false' > $(PG_NOMAIN) && \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; s=$$?; \
	      rm -f $(PG_NOMAIN); exit $$s; }; \
	  else echo "PostgreSQL tests need Debian's postgresql: sudo apt-get install -y postgresql" >&2; exit 1; fi; }

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
