# The two commands of the README: `make demo` and `make test`. Each creates .venv with
# python3 -m venv and installs what it needs, so a fresh machine needs only Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench docs clean system-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/streammix demo

test: $(STAMP) system-tools
	$(PY) -m pytest -q

# The cluster tests build network hosts with iproute2 (`ip netns`) and drop packets with
# nftables; as root, install what is missing (elsewhere those tests skip and say why).
system-tools:
	@if [ "$$(id -u)" = 0 ] && ! command -v nft >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		echo "installing nftables and iproute2 for the cluster tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2 >/dev/null) \
			|| echo "could not install nftables: the packet-loss test will say so"; \
	fi

bench: $(STAMP)
	$(PY) benchmarks/bench_em.py

# The HTML documentation (docs/*.md and an API reference from the docstrings) into
# docs/_build/html, offline, every warning an error. The docs extra's tools are also in
# the test extra, so `make test` runs the same build (tests/test_docs.py).
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	rm -rf docs/_build/html
	$(PY) -m sphinx -E -W --keep-going -q -b html -d docs/_build/doctrees docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) demo-data .pytest_cache
