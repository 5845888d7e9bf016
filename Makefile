# Two commands: `make run` (the harness against the embedded reference server) and `make test`.
# Both start with scripts/bootstrap.sh, which installs only what is missing.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: bootstrap run test fixtures serve clean

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	@$(VENV)/bin/harness run --profile ci

test: bootstrap
	@bash scripts/test.sh

fixtures: bootstrap
	@$(VENV)/bin/harness fixtures

serve: bootstrap
	@$(VENV)/bin/harness serve

clean:
	rm -rf reports/run-* reports/latest .pytest_cache .hypothesis .benchmarks
