# The two commands of the README: `make demo` and `make test`. Each creates .venv with
# python3 -m venv and installs what it needs, so a fresh machine needs only Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean system-tools

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

clean:
	rm -rf $(VENV) demo-data .pytest_cache
