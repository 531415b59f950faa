# nix_remote.builders development entry points.  `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
COLLECTION_LINK := .build/collections/ansible_collections/nix_remote/builders
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Ansible's own state (local tmp, galaxy cache) stays in the checkout, not in ~/.ansible.
export ANSIBLE_HOME := $(CURDIR)/.build/ansible-home

# molecule/testbed is the template to copy for a new scenario; its checks (hosts up, sshd, daemon,
# groups from platforms) are tests/testbed's and every scenario below runs its create and destroy,
# so CI leaves it out to keep its time (run it with SCENARIOS=testbed).
SCENARIOS ?= default fleet nixos-sim signing faults

.PHONY: help deps venv collections test check matrix packaging units plans private-checkout lint sanity build bench-smoke testbed-selftest differential-smoke molecule demo demo-clean clean

help:
	@echo "make demo        - real offloaded build on local test hosts (builder + client)"
	@echo "make test        - every test: the fast tier, testbed, molecule scenarios (CI)"
	@echo "make check       - fast tier without root or test hosts: units, lint (ruff too), sanity, build, packaging"
	@echo "make matrix      - ansible-test sanity and units for ansible-core 2.16-2.21 x Pythons (slow)"
	@echo "make units | lint | sanity | build | bench-smoke | differential-smoke"

# Debian packages (nspawn, mmdebstrap, nix-bin, ...).
deps:
	hacking/install-deps.sh

# The virtual environment is rebuilt whenever the pinned requirements change.
$(VENV)/.installed: requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: deps $(VENV)/.installed

collections:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@test -L $(COLLECTION_LINK) || ln -s ../../../.. $(COLLECTION_LINK)

# Fast tier: no root, no test hosts.  Every tier prints its stage times at the end.
FAST_STAGES := units lint sanity build packaging
check: venv collections
	hacking/stages.sh $(FAST_STAGES)

# CI's entry: the fast tier, then the testbed and every scenario.
test: venv collections
	hacking/stages.sh $(FAST_STAGES) plans private-checkout bench-smoke testbed-selftest differential-smoke molecule
	@echo "make test: all checks passed"

# The ansible-core x Python support matrix (noxfile.py): about 50 cells of ansible-test sanity
# and units, well over an hour here, so not part of `make test` (CI's budget is 60 minutes).
# MATRIX="sanity-2.16-3.12 units-2.17(target='3.7')" runs some cells; `$(BIN)/nox -l` lists them.
MATRIX ?=
matrix: venv
	$(BIN)/nox --no-color $(if $(MATRIX),-s $(MATRIX))

# One pytest worker per core (pytest-xdist).
units: venv collections
	$(BIN)/pytest -n auto tests/unit

# The roles' plans: each test runs site.yml in check mode on local inventory hosts, with nix_info's
# result replaced per platform (tests/roles/README.md).  About 90 site.yml runs, ~8 minutes here,
# so they are in `make test`, not in the fast tier.
plans: venv collections
	$(BIN)/pytest -n auto tests/roles

# A root user's clone sits in a 0700 directory (/root): nothing may assume others can read it.
private-checkout: venv
	hacking/private-checkout.sh $(VENV)

lint: venv collections
	$(BIN)/ruff check .
	$(BIN)/ansible-lint --profile production
	$(BIN)/antsibull-changelog lint

sanity: venv
	hacking/sanity.sh $(VENV)

build: venv
	@mkdir -p .build/dist
	$(BIN)/ansible-galaxy collection build --force --output-path .build/dist .

# The tarball's content, meta/execution-environment.yml, an ansible-builder build context, and
# galaxy-importer's verdict on the tarball.
packaging: venv collections build
	$(BIN)/pytest -p no:cacheprovider tests/packaging
	hacking/galaxy-importer.sh .build/dist/nix_remote-builders-$$($(PY) -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])').tar.gz

# Real hosts: systemd-nspawn containers booting systemd, sshd and nix-daemon (needs root).
testbed-selftest: venv collections
	$(BIN)/pytest tests/testbed

# The parsers against the real Nix of every release (host 2.8, the testbed images' 2.26 and
# 2.34, which testbed-selftest has built): 200 generated cases of each kind per release.
# The long run: .venv/bin/python bench/differential.py (10,000 machines + 10,000 nix.conf cases per
# release; docs/benchmarks.md, "Differential parsing").
differential-smoke: venv collections
	$(BIN)/pytest -p no:cacheprovider -m differential tests/differential

# Every scenario runs even when one fails; the target fails at the end, naming the failures.
# Molecule's state goes under .build: its default (~/.cache/molecule, keyed by the checkout's
# base name) is shared by every checkout of the same name on the machine.
molecule: venv collections
	failed=""; \
	for scenario in $(SCENARIOS); do \
		MOLECULE_EPHEMERAL_DIRECTORY="$(CURDIR)/.build/molecule/$$scenario" \
			PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test -s $$scenario || failed="$$failed $$scenario"; \
	done; \
	if [ -n "$$failed" ]; then echo "molecule scenarios failed:$$failed"; exit 1; fi; \
	echo "molecule scenarios passed: $(SCENARIOS)"

bench-smoke: venv collections
	$(PY) bench/parse_machines.py --smoke
	rm -f .build/bench-smoke/offload-bookworm.json .build/bench-smoke/converge.json
	$(PY) bench/offload.py --smoke
	$(PY) bench/converge.py --smoke
	$(PY) -c 'import json, sys; r = json.load(open(sys.argv[1])); keys = {"release", "nix_version", "config", "workload", "wall_s", "ideal_s", "runs"}; assert len(r) == 6 and all(keys <= set(x) for x in r), sys.argv[1]' .build/bench-smoke/offload-bookworm.json
	$(PY) -c 'import json, sys; r = json.load(open(sys.argv[1])); assert len(r) == 1 and r[0]["second_changed_total"] == 0, sys.argv[1]' .build/bench-smoke/converge.json

demo: venv collections
	hacking/demo.sh

demo-clean:
	python3 tests/testbed/testbed.py down --name demo

clean:
	rm -rf .build
