# Kefu — two commands: `make run` (set up + serve with demo data) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
MO     := web/translations/zh_Hans_CN/LC_MESSAGES/messages.mo
# npm packages: the modeler's browser bundles (served by the product) and the loopback SMSC peer.
NODE   := node_modules/.installed-$(shell cat package.json package-lock.json | cksum | cut -d' ' -f1)

.PHONY: run test test-fast lint bench translations clean browser

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

$(MO): web/translations/zh_Hans_CN/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel -q compile -d web/translations

$(NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-*; touch $@

translations: $(MO)

run: $(STAMP) $(MO) $(NODE)
	$(BIN)/flask --app wsgi kefu serve --demo

test: $(STAMP) $(MO) $(NODE) lint browser
	$(BIN)/python -m pytest -q

# The browser tests (tests/browser) drive Debian's Chromium, with a Chinese font so that pages
# render; a root shell on a machine without them (CI) installs both, nothing is downloaded else.
browser:
	@if { [ ! -x /usr/bin/chromium ] || [ ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; } \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update && apt-get install -y --no-install-recommends chromium fonts-wqy-microhei; \
	fi

test-fast: $(STAMP) $(MO) $(NODE)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy engine slas connectors peers

bench: $(STAMP)
	bench/run_all.sh

clean:
	rm -rf $(VENV) instance $(MO) node_modules
