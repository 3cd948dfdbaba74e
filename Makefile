# phiguard — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSTEM := $(VENV)/.system
DEMO_HOME ?= phiguard-demo

.PHONY: demo test test-fast bench lint install system clean

# Debian packages the tests and reports need (chromium for browser tests, a TrueType CJK
# font for bilingual PDFs, ripgrep as a benchmark anchor). Installed only when missing.
$(SYSTEM): .ci/apt-packages
	@missing=""; for p in $$(grep -v '^#' .ci/apt-packages); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing Debian packages:$$missing (run as root to install)"; fi; \
	fi
	@mkdir -p $(VENV) && touch $(SYSTEM)

# the C extension (phiguard/crypto/_batch.c) builds against libssl-dev, hence $(SYSTEM) first
$(STAMP): pyproject.toml setup.py phiguard/crypto/_batch.c $(SYSTEM)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,spark,bench]'
	touch $(STAMP)

install: $(STAMP) $(SYSTEM)
system: $(SYSTEM)

demo: install
	$(BIN)/phiguard demo --home $(DEMO_HOME) --fresh

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider

test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider -m "not slow and not spark and not browser"

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check phiguard tests bench
	$(BIN)/ruff format --check phiguard tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_HOME) $(DEMO_HOME)-input .pytest_cache
