# Every target that needs Python first makes sure .venv exists and matches the pinned requirements.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
export PYTHONPATH := layers/coach:.
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: help run chat sms researcher test unit study-week check lint typecheck cfn-lint validate openapi coverage clean bench redrive

help:
	@echo "make run       start the local stack on 127.0.0.1:\$${PORT:-3000}"
	@echo "make chat      talk to the coach in this terminal (offline coach unless OPENAI_* is set)"
	@echo "make sms FROM=+12065550100 BODY='hi'   text the running local stack as that number; prints the replies"
	@echo "make researcher ARGS='export --out study-data'   the researchers' API from the command line (enroll, export, timeline, participants)"
	@echo "make test      run the whole test suite"
	@echo "make unit      the unit tests only (under a minute; no moto, no local stack)"
	@echo "make study-week   50 participants, a simulated week, the export checked (about 4 minutes)"
	@echo "make check     ruff + mypy + cfn-lint + sam validate + tests with a coverage floor"
	@echo "make openapi   rewrite docs/openapi.json from the enrollment API"
	@echo "make bench     every figure of issue 12 against its goal (cold start, requests, sizes, pacing, suite time)"
	@echo "make redrive   move the inbound dead-letter queue back to the queue (STACK=name on AWS; else the local stack)"

# (Re)create the venv when it is missing or a requirements file changed since the last install.
# phonenumberslite replaced phonenumbers: both install the module `phonenumbers`, so a venv that had the
# old one drops both first (uninstalling one later would delete the other's files) and gets lite alone.
$(STAMP): layers/coach/requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip==26.3
	@if $(PY) -m pip show phonenumbers >/dev/null 2>&1; then $(PY) -m pip uninstall -q -y phonenumbers phonenumberslite; fi
	@$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

$(SAM_STAMP): requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/python -m pip install -q --upgrade pip==26.3
	@$(SAM_VENV)/bin/python -m pip install -q -r requirements-sam.txt
	@touch $@

run: $(STAMP)
	$(PY) -m infra.local

chat: $(STAMP)
	$(PY) -m infra.chat

# FROM, BODY (and WAIT) reach the recipe's environment; "$$BODY" keeps quotes and $ in the text intact.
sms: $(STAMP)
	@$(PY) -m infra.sms --from "$$FROM" --body "$$BODY" $${WAIT:+--wait "$$WAIT"}

# ARGS reaches the recipe's environment; eval splits it as the shell would, so quoted words stay one argument.
# PORT, COACH_API_URL and API_KEY reach the command too.
researcher: $(STAMP)
	@eval set -- "$$ARGS"; $(PY) -m infra.researcher "$$@"

# The suite in TEST_WORKERS processes (pytest-xdist), a test module per process at a time, so a module's
# stack or fake starts once; TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The domain, bots and services without AWS (no moto, no local stack): under a minute, for the edit-test loop.
unit: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

cfn-lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

validate: $(SAM_STAMP)
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml

# Issue 10's study at its full size: 50 participants from one CSV, a week on the virtual clock, the export
# checked as a statistician would (the suite runs the same with 20).
study-week: $(STAMP)
	STUDY_PARTICIPANTS=50 STUDY_DAYS=7 $(PY) -m pytest -q tests/e2e/test_study_week.py

coverage: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --cov --cov-report=term

check: lint typecheck cfn-lint validate coverage

openapi: $(STAMP)
	$(PY) -m functions.enrollment.openapi > docs/openapi.json

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage

# STACK=sms-habit-coach-dev: the deployed stack's queues; without it, the running local stack's (PORT). DRY_RUN=1 counts.
redrive: $(STAMP)
	@if [ -n "$$STACK" ]; then where="--stack $$STACK"; else where="--local --port $${PORT:-3000}"; fi; \
	$(PY) -m infra.redrive $$where $${DRY_RUN:+--dry-run}

bench: $(STAMP)
	$(PY) -m tests.bench
