# sentiment_hf developer commands. `make` (or `make help`) lists them.
# Variables: make train RECIPE=recipes/base.yaml ARGS="data.source=../shared/data/rt-polarity"
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

RECIPE  ?= recipes/base.yaml
SWEEP_RECIPE ?= recipes/sweep.yaml
ARGS    ?=
MODEL   ?= runs/base
BACKEND ?= onnx-int8
SPLIT   ?= test
PORT    ?= 8000
IMAGE   ?= sentiment-hf
DATA_DIR ?= $(CURDIR)/data
RUNS_DIR ?= $(CURDIR)/runs
GPUS    ?=
DOCKER  ?= docker
DOCKER_RUN = $(DOCKER) run --rm --user "$$(id -u):$$(id -g)" $(if $(GPUS),--gpus $(GPUS),) \
	-v "$(RUNS_DIR):/app/runs" -v "$(DATA_DIR):/app/data"

.PHONY: help setup train sweep eval test lint format docs serve loadtest \
	docker-train docker-serve data-pull data-push repro

help: ## List the targets (this text)
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install the locked environment (dev tools included) and the git hooks
	uv sync --locked
	uv run pre-commit install

train: ## Fine-tune: uv run sentiment train $(RECIPE) $(ARGS)
	uv run sentiment train $(RECIPE) $(ARGS)

sweep: ## Hyperparameter search with Optuna: uv run sentiment sweep $(SWEEP_RECIPE) $(ARGS)
	uv run sentiment sweep $(SWEEP_RECIPE) $(ARGS)

eval: ## Evaluate a run directory: MODEL=runs/base SPLIT=test
	uv run sentiment eval $(MODEL) --split $(SPLIT)

test: ## Run the test suite with coverage (the README's command)
	uv run pytest --cov=sentiment_hf --cov-report=term

lint: ## ruff check + ruff format --check + hadolint + actionlint + pre-commit
	uv run ruff check .
	uv run ruff format --check .
	uv run hadolint --failure-threshold style Dockerfile
	uv run actionlint
	uv run pre-commit run --all-files

format: ## Fix what ruff can fix and format the code
	uv run ruff check --fix .
	uv run ruff format .

docs: ## Build the documentation site into site/ (strict: warnings fail)
	uv run mkdocs build --strict

serve: ## Serve a model over HTTP: MODEL=runs/base BACKEND=onnx-int8 PORT=8000
	uv run sentiment serve $(MODEL) --backend $(BACKEND) --port $(PORT)

loadtest: ## Load-test the API against MODEL with BACKEND (scripts/loadtest.sh)
	bash scripts/loadtest.sh $(MODEL) $(BACKEND)

docker-train: ## Build the train image and train RECIPE in it (runs/ and DATA_DIR mounted; GPUS=all)
	$(DOCKER) build --target train -t $(IMAGE):train .
	$(DOCKER_RUN) $(IMAGE):train train $(RECIPE) $(ARGS)

docker-serve: ## Build the serve image and serve MODEL (under runs/) on PORT
	$(DOCKER) build --target serve -t $(IMAGE):serve .
	$(DOCKER_RUN) -v "$(abspath $(MODEL)):/models/model:ro" -p "$(PORT):8000" $(IMAGE):serve

data-pull: ## Fetch DVC-tracked data and outputs from the gs:// remote
	uv run dvc pull

data-push: ## Upload DVC-tracked data and outputs to the gs:// remote
	uv run dvc push

repro: ## Run the DVC pipeline (prepare -> train -> evaluate) where inputs changed
	uv run dvc repro
