# Two set-up commands work on a machine that has only python3 (3.11 or newer) and make:
#   make run    creates .venv, installs netassist and starts the main job
#   make test   installs the test extras and runs the whole suite
# PYTHON=... names the interpreter .venv is made with (make run PYTHON=/usr/bin/python3).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Says "yes" when the interpreter in $(1) is CPython 3.11 or newer and runs.
NEW_ENOUGH = $(1) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1

.PHONY: run tickets test lint format bench clean venv-check sanitize

# Runs before anything is installed: an interpreter too old is one line, not a broken
# .venv; a .venv made by an interpreter that does not run or is too old (or by another
# one than a PYTHON named on this command line) is made again.
venv-check:
	$(if $(shell $(call NEW_ENOUGH,$(PYTHON)) && echo yes),,$(error netassist needs Python 3.11 \
	  or newer, and $(PYTHON) is $(or $(shell $(PYTHON) -V 2>/dev/null),not a Python that runs \
	  here); name another with PYTHON=, as in: make $(or $(MAKECMDGOALS),run) PYTHON=python3.12))
	@if [ -e $(VENV) ]; then \
	  made_with=$$(cat $(VENV)/.made-with 2>/dev/null); \
	  wanted=$$($(PYTHON) -c 'import sys; print(sys.executable)'); \
	  if ! $(call NEW_ENOUGH,$(BIN)/python); then \
	    echo "make: $(VENV) was made by an interpreter that is missing or older than 3.11; making it again" >&2; \
	    rm -rf $(VENV); \
	  elif [ "$(origin PYTHON)" = "command line" ] && [ "$$made_with" != "$$wanted" ]; then \
	    echo "make: $(VENV) was made with $${made_with:-another python}; making it again with $$wanted" >&2; \
	    rm -rf $(VENV); \
	  fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PYTHON) -c 'import sys; print(sys.executable)' > $(VENV)/.made-with
	$(BIN)/python -m pip install --quiet --upgrade pip

# The install compiles the optional core (src/netassist/server/_speedups.c) where a C compiler
# exists, and goes on without it where none does (setup.py): the pure-Python core then serves.
$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py src/netassist/server/_speedups.c
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-tickets: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[tickets]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The tutorial's demo site (examples/seed_site) in the foreground; Ctrl-C stops it.
# Two workers, as it would be deployed: the site keeps nothing in a worker's memory (the
# accounts and the cookie's secret are in its SQLite file), and a sign-in's password hash
# (about 0.1 s of CPU) in one worker leaves the other serving pages. Two, not --workers
# auto: a demo needs no more processes on a machine with many cores.
# RUN_ARGS adds netassist run options, as in: make run RUN_ARGS="--threads 4" (or "-w 1").
RUN_ADDRESS := 127.0.0.1:8000
RUN_WORKERS := 2
run: venv-check
	@$(MAKE) --no-print-directory $(VENV)/.installed
	@echo "netassist demo site: open http://$(RUN_ADDRESS)/ (Ctrl-C stops it)"
	$(BIN)/netassist run --chdir examples seed_site:app --bind $(RUN_ADDRESS) \
	  --workers $(RUN_WORKERS) $(RUN_ARGS)

# The tickets example (examples/tickets): 4 workers of 4 threads selling from one stock, in
# the foreground on 127.0.0.1:8001. The tickets are kept in var/tickets.sqlite3 here, or in
# the PostgreSQL that DATABASE_URL names (postgresql://user:password@host/db; the driver is
# installed then): make tickets DATABASE_URL=postgresql://...
TICKETS_ADDRESS := 127.0.0.1:8001
TICKETS_DATABASE := sqlite:///$(CURDIR)/var/tickets.sqlite3
tickets: venv-check
	@$(MAKE) --no-print-directory $(if $(DATABASE_URL),$(VENV)/.installed-tickets,$(VENV)/.installed)
	@echo "netassist tickets: open http://$(TICKETS_ADDRESS)/ (Ctrl-C stops it)"
	@echo "the tickets are kept in $(if $(DATABASE_URL),the database DATABASE_URL names,var/tickets.sqlite3)"
	@# Not echoed: DATABASE_URL may hold a password.
	@DATABASE_URL="$(or $(DATABASE_URL),$(TICKETS_DATABASE))" $(BIN)/netassist run \
	  --chdir examples tickets:app --bind $(TICKETS_ADDRESS) --workers 4 --threads 4 $(RUN_ARGS)

test: venv-check
	@$(MAKE) --no-print-directory $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv-check
	@$(MAKE) --no-print-directory $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

format: venv-check
	@$(MAKE) --no-print-directory $(VENV)/.installed-test
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

bench: venv-check
	@$(MAKE) --no-print-directory $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The compiled core built with AddressSanitizer and UndefinedBehaviorSanitizer into a copy of
# the package under build/sanitize, and the protocol and compiled-core tests run against it
# (CI runs this; it needs gcc or clang).
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SANITIZED := build/sanitize
CC ?= cc
sanitize: venv-check
	@$(MAKE) --no-print-directory $(VENV)/.installed-test
	rm -rf $(SANITIZED) && mkdir -p $(SANITIZED) && cp -r src/netassist $(SANITIZED)/
	rm -f $(SANITIZED)/netassist/*.so
	$(CC) -O1 -g $(SANITIZE) -shared -fPIC -Wall -Werror \
	  -I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
	  src/netassist/server/_speedups.c \
	  -o $(SANITIZED)/netassist/_speedups$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
	PYTHONPATH=$(SANITIZED) ASAN_OPTIONS=detect_leaks=0 \
	  LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  $(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) \
	  tests/server/test_sanitized.py tests/server/test_protocol.py tests/server/test_speedups.py

clean:
	rm -rf $(VENV) build .pytest_cache test-artifacts
