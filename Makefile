# Two commands on a fresh machine: `make demo` (install + the demo audit), `make test`.
.PHONY: install demo test lint bench
install: .venv/.installed
.venv/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh

# The demo's gate verdict is its exit code (0 pass, 1 fail); only a crash or bad input (2+) fails `make`.
# Data: the official retinamnist.npz, downloaded once into the cache, or read from $MEDAUDIT_DATA when it is set.
demo: install
	.venv/bin/medaudit demo --out medaudit-demo $${MEDAUDIT_DATA:+--data "$$MEDAUDIT_DATA"}; code=$$?; \
	if [ $$code -le 1 ]; then echo "medaudit exit code $$code (0: gate passed, 1: gate failed; see medaudit-demo/report.pdf)"; \
	else echo "medaudit exit code $$code: no audit ran (the line above says why)"; exit $$code; fi

test: install
	.venv/bin/python -m pytest

# The layers (.importlinter: stages import only earlier stages, and only what a package exports) and one formatter.
lint: install
	.venv/bin/lint-imports
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .

bench: install
	.venv/bin/python benchmarks/run_benchmarks.py
