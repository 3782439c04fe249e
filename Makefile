# Two commands: `make run` starts everything on embedded defaults, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test demo venv clean browser screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/accord dev

test: $(STAMP) browser
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/accord demo

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# The audit trail at scale, outside `make test`: 10M events unless ACCORD_BENCH_EVENTS says
# otherwise; ACCORD_BENCH_KEEP=DIR keeps the dataset there for the next run.
# Then reminders: 10 cooperations x 100 projects x 10 milestones due at one instant, unless
# ACCORD_BENCH_COOPERATIONS / _PROJECTS / _MILESTONES say otherwise.
# Then staff actions, lifecycles and reads against the floor (bench/lifecycle.py): lifecycles
# 8,16,64 at 1,8,64 concurrent clients and reads at 1k,10k,100k cooperations unless
# ACCORD_BENCH_LIFECYCLES / _CLIENTS / _READ_SIZES (comma-separated) say otherwise.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench.audit --events $(or $(ACCORD_BENCH_EVENTS),10000000) $(if $(ACCORD_BENCH_KEEP),--keep $(ACCORD_BENCH_KEEP))
	$(BIN)/python -m bench.reminders $(if $(ACCORD_BENCH_COOPERATIONS),--cooperations $(ACCORD_BENCH_COOPERATIONS)) $(if $(ACCORD_BENCH_PROJECTS),--projects $(ACCORD_BENCH_PROJECTS)) $(if $(ACCORD_BENCH_MILESTONES),--milestones $(ACCORD_BENCH_MILESTONES))
	$(BIN)/python -m bench.lifecycle $(if $(ACCORD_BENCH_CLIENTS),--concurrency $(ACCORD_BENCH_CLIENTS)) $(if $(ACCORD_BENCH_LIFECYCLES),--lifecycles $(ACCORD_BENCH_LIFECYCLES)) $(if $(ACCORD_BENCH_READ_SIZES),--read-sizes $(ACCORD_BENCH_READ_SIZES))

# The API fuzzer at length (tests/test_api_fuzz.py): Schemathesis with ACCORD_FUZZ_EXAMPLES examples
# per operation and generation mode (100 unless set) and the whole hostile corpus on every operation;
# `make test` runs it bounded (3 examples, a sample of the corpus).
.PHONY: fuzz
fuzz: $(STAMP)
	ACCORD_FUZZ_EXAMPLES=$(or $(ACCORD_FUZZ_EXAMPLES),100) $(BIN)/pytest -q -p no:cacheprovider tests/test_api_fuzz.py

# The browser tests (tests/browser/) drive Debian's chromium, never Playwright's own download;
# CJK fonts so that Chinese pages show characters in screenshots, not boxes. Installed only if
# missing, with sudo unless root (worked out only when needed); the package lists are refreshed
# only if the install fails.
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
BROWSER_PACKAGES := chromium fonts-noto-cjk
SUDO = $(if $(filter 0,$(shell id -u)),,$(shell command -v sudo))
APT = $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -e $(CJK_FONT) ]; then \
	  $(APT) install -y $(BROWSER_PACKAGES) || { $(APT) update && $(APT) install -y $(BROWSER_PACKAGES); }; \
	fi

# Screenshots of every page in both languages (tests/browser/pages.py) and of the sign-in states.
screenshots: $(STAMP) browser
	$(BIN)/pytest -q -m screenshots tests/browser
	@echo "Screenshots: $(CURDIR)/test-artifacts/screenshots/zh/*.png and .../en/*.png"

# The large fault-injection run (tests/faults/README.md): lifecycles through real processes while the
# worker is SIGKILLed, Temporal restarted, PostgreSQL stopped and SMTP down; `make test` runs a small one.
# ACCORD_FAULTS_LIFECYCLES / _SEED / _KILLS / _PG_OUTAGE / _SMTP_OUTAGE (seconds) change the plan.
.PHONY: faults
faults: $(STAMP)
	$(BIN)/pytest -q -s -p no:cacheprovider -m faults tests/faults/test_faults.py
