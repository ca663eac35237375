# ntd: `make run` to try it (SQLite, embedded broker), `make test` to run the suite (PostgreSQL, Redis).
.DEFAULT_GOAL := help
SHELL := /bin/sh
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ntd
export REDIS_URL ?= redis://127.0.0.1:6379/0

RUN_ENV := DEBUG=1 DATABASE_URL=sqlite:///var/ntd.sqlite3 CACHE_URL=locmem:// CELERY_BROKER_URL=filesystem:// PORT=$(PORT)
TEST_ENV := DEBUG=0 SECRET_KEY=test-only-secret-key-not-for-production-0123456789abcdef \
	AUDIT_CHECKPOINT_KEY=test-only-audit-checkpoint-key ALTCHA_HMAC_KEY=test-only-altcha-key \
	NTD_ENCRYPTION_KEYS=test:dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24 ALLOWED_HOSTS=localhost,127.0.0.1,testserver NTD_PUBLIC_URL=http://testserver NTD_COUNTRY=GB \
	SECURE_SSL_REDIRECT=0 LOG_JSON=1 TRACE_NEW_CASES=0 PYTHONDONTWRITEBYTECODE=1
PYTEST_ARGS ?=

.PHONY: help run test lint clean

help:
	@echo "make run    start ntd on http://127.0.0.1:$(PORT) with demo data (needs only Python 3.12+)"
	@echo "make test   run the whole suite on PostgreSQL and Redis (DATABASE_URL, REDIS_URL)"
	@echo "make lint   ruff and the migration check"

$(VENV)/.installed: pyproject.toml
	@python=$$(scripts/find-python) || exit 1; \
	echo "Using $$python ($$($$python --version))"; \
	[ -x $(PY) ] || $$python -m venv $(VENV); \
	$(PY) -m pip install --quiet --upgrade pip && \
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(VENV)/.installed
	@mkdir -p var
	$(RUN_ENV) $(PY) manage.py migrate --no-input
	$(RUN_ENV) $(PY) manage.py seed_demo
	$(RUN_ENV) $(PY) manage.py devstack --port $(PORT)

test: $(VENV)/.installed
	@$(PY) scripts/check-services
	@$(TEST_ENV) $(PY) manage.py collectstatic --no-input --verbosity 0
	$(TEST_ENV) $(PY) -m pytest -n $${PYTEST_WORKERS:-auto} $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(TEST_ENV) DATABASE_URL=sqlite:///:memory: $(PY) manage.py makemigrations --check --dry-run  # needs no server

clean:
	rm -rf var .pytest_cache
