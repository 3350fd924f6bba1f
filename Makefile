# One-command setup: `make lab` (open JupyterLab) and `make test` (all tests + notebooks) create .venv if missing.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch must be pinned in the SAME pip command as everything that depends on it; otherwise pip resolves a newer
# CUDA build of several GB (see README "Installing"). Override for your machine: make lab TORCH_VERSION=2.5.1
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed
# pip on our machines prints one warning per package for empty local index folders; hide only those lines.
PIP_NOISE := is ignored: it is neither a file nor a directory

.PHONY: lab test unit notebooks sync-notebooks assignments self-study bench bench-peers setup clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; assert v >= (3, 11), f"switch_sae_mini needs Python >= 3.11, found {v.major}.{v.minor}; run make PYTHON=python3.11"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing switch_sae_mini and its dependencies into $(VENV) (torch==$(TORCH_VERSION)) ..."
	$(BIN)/python -m pip install --disable-pip-version-check -q "torch==$(TORCH_VERSION)" -e ".[dev]" 2>&1 \
		| { grep -v "$(PIP_NOISE)" || true; }
	@touch $@

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

test: unit notebooks

unit: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest tests -q -rs

# FAST only shrinks sizes (tokens, widths, steps); every cell still runs. The course cache (activations and SAEs
# shared between chapters, data/shared_cache.py) lives in the checkout's .cache/course, so a fresh clone starts cold.
COURSE_CACHE ?= $(CURDIR)/.cache/course
notebooks: $(STAMP)
	@if ls notebooks/*.ipynb >/dev/null 2>&1; then \
		SWITCH_SAE_MINI_CACHE="$(COURSE_CACHE)" SSM_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env \
			--nbval-cell-timeout=600 -p no:cacheprovider notebooks/; \
	else echo "no notebooks yet"; fi

# Regenerate every .ipynb from its reviewed .py source (outputs are never committed).
sync-notebooks: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9]*.py

# What students receive, in release/ (git-ignored): every notebook with exercises (solutions stubbed) and the
# package as a wheel. Neither holds solutions, hidden cases or instructor notebooks. See docs/teaching.md.
assignments: $(STAMP)
	$(BIN)/python -m switch_sae_mini assignments --out release
	$(BIN)/python -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation -w release . 2>&1 \
		| { grep -v "$(PIP_NOISE)" || true; }
	@ls release/*.whl

# Self-study versions (stubs, each solution collapsed after its check): for learners alone, never a graded course.
self-study: $(STAMP)
	$(BIN)/python -m switch_sae_mini assignments --self-study --out self-study

# Training-step throughput (README "Speed"): python -m switch_sae_mini bench; not part of `make test`.
# Adds SAELens and sparsify to the same run when `make bench-peers` has built their virtualenv.
bench: $(STAMP)
	$(BIN)/python -m switch_sae_mini bench $(if $(wildcard .venv-peers/bin/python),--peers .venv-peers/bin/python) \
		$(BENCH_ARGS)

# Peers live in their own virtualenv: SAELens pins transformer-lens < 4, this package needs 4.
bench-peers:
	@test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --disable-pip-version-check -q "torch==$(TORCH_VERSION)" \
		"sae-lens==6.54.12" "eai-sparsify==1.3.3" 2>&1 | { grep -v "$(PIP_NOISE)" || true; }

clean-venv:
	rm -rf $(VENV)
