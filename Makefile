# sslnotify — `make run` starts the whole service locally, `make test` runs every check.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The Lambda runtime is Python 3.13; use the same locally (pyenv's copy if python3.13 is not on PATH).
PYTHON ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3 /usr/bin/python3.13; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 13)' 2>/dev/null && { echo $$p; break; }; done)
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: venv run test lint format unit bench bench-quick clean frontend plan deploy

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed (the Lambda runtime); install python3.13"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP)

run: venv
	$(BIN)/sslnotify local $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: venv
	$(BIN)/pytest tests/unit -q

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache

# The website (frontend/README.md): `make site` assembles the pages into build/site;
# `make html-check` validates them with html-validate, pinned in frontend/package.json.
.PHONY: site html-check
SITE_DIR := build/site

site: venv
	$(BIN)/python frontend/build.py --out $(SITE_DIR)

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	npm ci --prefix frontend --no-audit --no-fund --silent
	touch $@

html-check: site frontend/node_modules/.installed
	frontend/node_modules/.bin/html-validate --config frontend/.htmlvalidate.json $(SITE_DIR)/*.html

# The sweep benchmark (docs/performance.md): the real sweep, the original design, the floor.
bench: venv
	$(BIN)/python -m bench.sweep $(ARGS)

bench-quick: venv
	$(BIN)/python -m bench.sweep --quick $(ARGS)

# Deployment to AWS (terraform/, README "Deploy to AWS"). `make deploy` builds one zip per
# function, applies Terraform (terraform/terraform.tfvars) and publishes the website;
# `make plan` shows what an apply would change; `make tf-check` is the static checks.
.PHONY: package plan deploy dns-zone tf-init tf-check tools
TOOLS_VENV := .venv-tools
CHECKOV := $(TOOLS_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30
TF := terraform -chdir=terraform
# The offline copy of the AWS provider, where there is one (CI); else the registry.
TF_PLUGIN_DIR ?= /opt/tf-plugins
TF_INIT_FLAGS := -input=false $(if $(wildcard $(TF_PLUGIN_DIR)),-plugin-dir=$(TF_PLUGIN_DIR))

# checkov pins what it needs: its own virtualenv keeps that away from the project's.
$(CHECKOV):
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed"; exit 1; }
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

tools: $(CHECKOV)

# The Terraform tests run checkov (tests/integration/test_terraform.py).
test: tools

package: venv
	$(BIN)/python tools/package.py

tf-init:
	$(TF) init $(TF_INIT_FLAGS)

plan: package tf-init
	$(TF) plan

# Only the hosted zone: run once before `make deploy` when the domain is registered
# elsewhere, then point the registrar at the name servers it prints. The output's every
# dependency must be among the targets, or Terraform silently drops it ("No outputs found");
# tests/integration/test_terraform.py runs this very command against the emulator.
DNS_ZONE_TARGETS := -target=aws_route53_zone.main -target=data.aws_route53_zone.existing
dns-zone: package tf-init
	$(TF) apply $(DNS_ZONE_TARGETS)
	$(TF) output name_servers

deploy: package tf-init
	$(TF) apply
	$(BIN)/python tools/deploy_frontend.py

tf-check: tools tf-init
	$(TF) fmt -check -recursive
	$(TF) validate
	$(CHECKOV) -d terraform --framework terraform --quiet --compact --skip-download
