# Two commands on a fresh machine: `make demo` (install + the bundled demo audit), `make test`.
.PHONY: install demo test bench
install: .venv/.installed
.venv/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh

# The demo's gate verdict is its exit code (0 pass, 1 fail); only a crash or bad input (2+) fails `make`.
demo: install
	.venv/bin/medaudit demo --out medaudit-demo; code=$$?; \
	echo "medaudit exit code $$code (0: gate passed, 1: gate failed; see medaudit-demo/report.pdf)"; \
	[ $$code -le 1 ]

test: install
	.venv/bin/python -m pytest

bench: install
	.venv/bin/python benchmarks/run_benchmarks.py
