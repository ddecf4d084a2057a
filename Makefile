# q2c-sync: `make run` starts the sync on its embedded stack; `make test` passes the tests.
# Both install what they need first: Debian packages (PostgreSQL, Prometheus, Java, Maven,
# docker-compose for validating the Compose file, Chromium for the status page's browser test),
# the Python packages into .venv, and the Kafka/Connect/Debezium jars from Maven Central (fetched by `q2c up`, cached in ~/.m2).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBS   := postgresql prometheus openjdk-17-jdk-headless maven docker-compose chromium

.PHONY: run demo test lint stop status install system python chaos bench bench-quick bench-history bench-state bench-ab bench-tools clean

run: install
	$(BIN)/q2c up
	@echo
	@$(BIN)/q2c status || true
	@echo
	@echo "Where to look (also: $(BIN)/q2c env):"
	@$(BIN)/q2c env | sed 's/^export /  /; s/:[^:@/]*@/:***@/'
	@echo "Logs: $${Q2C_HOME:-.q2c}/logs   Stop: make stop"
	@echo
	@echo "See it work: make demo (a simulated firm at work on the sources; the ERP fills within a minute;"
	@echo "Ctrl-C stops it), then open the status page above or run $(BIN)/q2c trace Q-D<number>"

# A firm in a box on the running stack (q2c demo --help: size, rate, seed, days).
demo: python
	$(BIN)/q2c demo $(DEMO_ARGS)

test: install lint
	$(BIN)/pytest -ra

# ruff (pyproject.toml: E, F, I, B, UP, SLF) and the layers' contracts (import-linter), before the tests
lint: python
	$(BIN)/ruff check streams tests bench
	$(BIN)/lint-imports

stop:
	$(BIN)/q2c down

status:
	$(BIN)/q2c status

install: system python

# Debian packages, installed only when a command is missing.
system:
	@missing=""; \
	command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v javac >/dev/null 2>&1 || missing="$$missing openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

python: $(BIN)/q2c

$(BIN)/q2c: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

# The fault tests with a larger load and the ERP down for 60 s.
chaos: install
	Q2C_FAULT_ENGAGEMENTS=40 Q2C_FAULT_ENTRIES=500 Q2C_FAULT_ERP_DOWN_S=60 $(BIN)/pytest -ra -s tests/faults

# The benchmark suite (bench/suite.py): backlog catch-up, the bare-loop baseline, transform,
# latency at 500 changes/s, capture; the median of three runs into bench/results.json.
bench: install bench-tools
	$(BIN)/python -m bench.suite --workers 2

# The quick one: 10,000 approvals end to end and the pure core.
bench-quick: install bench-tools
	$(BIN)/python -m bench.throughput

# A firm's history (COPY into the sources), caught up, then live approvals with a kill -9.
bench-history: install bench-tools
	$(BIN)/python -m bench.history --rebuild

# The mirror and the ledger on RocksDB at a million source rows, without Kafka: memory and restart.
bench-state: install bench-tools
	$(BIN)/python -m bench.state_scale

# Two revisions' catch-up side by side, alternating (bench/ab.py): make bench-ab A=<base> B=<change>
bench-ab: install bench-tools
	$(BIN)/python -m bench.ab $(A) $(B)

bench-tools:
	$(BIN)/pip install -q -e ".[test,bench]"

clean: stop
	rm -rf .q2c
