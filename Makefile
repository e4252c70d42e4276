# Two commands on a fresh machine: `make demo` (install + the bundled demo audit), `make test`.
.PHONY: install demo test bench
install: .venv/.installed
.venv/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh

demo: install
	.venv/bin/medaudit demo --out medaudit-demo

test: install
	.venv/bin/python -m pytest

bench: install
	.venv/bin/python benchmarks/run_benchmarks.py
