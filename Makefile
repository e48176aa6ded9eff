# The verbs of the project. `make run` and `make test` each do the whole set-up first
# (virtualenv, pinned dependencies, embedded PostgreSQL, migrations, demo data).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Development defaults; production sets its own environment (see .env.example). DEBUG as the
# caller had it (empty if unset) is kept for `check-deploy`'s look at the real environment.
CALLER_DEBUG := $(DEBUG)
export DEBUG ?= true
export PYTHONDONTWRITEBYTECODE := 1

DEPS_STAMP := $(VENV)/.deps-$(shell cat requirements.lock pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup run serve test bench lint db db-stop psql migrate demo clean browser check-deploy wal-archive

setup: $(DEPS_STAMP) .env wal-archive migrate demo

# Development settings for manage.py in a shell; never overwrites an existing .env.
.env:
	@printf '# Local development settings (git-ignored). See .env.example.\nDEBUG=true\n' > .env

$(DEPS_STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@rm -f $(VENV)/.deps-* && touch $@

db: $(DEPS_STAMP)
	@$(BIN)/python -c "from config.embedded_db import embedded_database_url as u; import os; print('database:', os.environ.get('DATABASE_URL') and 'DATABASE_URL' or u())"

# WAL archiving of the embedded server into var/wal-archive (config/embedded_db.py): restarts a
# running server once if it has archiving off. EMBEDDED_WAL_ARCHIVE=0 turns it off.
wal-archive: $(DEPS_STAMP) .env
	@$(BIN)/python -m config.embedded_db --wal-archive

migrate: $(DEPS_STAMP) .env
	$(BIN)/python manage.py migrate_schemas --executor=standard -v 0

demo: migrate
	$(BIN)/python manage.py load_demo_data
	$(BIN)/python manage.py setup_schedules
	$(BIN)/python manage.py collectstatic --noinput -v 0

run: setup
	$(BIN)/python scripts/run_dev.py

# Production server: gunicorn (config/gunicorn.conf.py) and the worker (deploy/serve.py) with
# production settings; SECRET_KEY, ALLOWED_HOSTS and BASE_DOMAIN come from the environment or
# it refuses. Migrations and static files first; no demo data. README "Production".
serve: export DEBUG = false
serve: $(DEPS_STAMP)
	@$(BIN)/python -m config.startup --production --name "make serve"
	$(BIN)/python manage.py migrate_schemas --executor=standard -v 0
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python deploy/serve.py

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (Playwright's own browser download does not work
# here). Installed once; a machine without apt or root must provide CHROMIUM_PATH itself.
CHROMIUM_PATH ?= /usr/bin/chromium
export CHROMIUM_PATH
browser:
	@test -x "$(CHROMIUM_PATH)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo apt-get install chromium' (or set CHROMIUM_PATH)" >&2; exit 1; \
	  fi; }

bench: setup
	$(BIN)/python -m bench

lint: $(DEPS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/lint-imports

# First the production settings of .env.example's example (a generated key), whatever this
# environment holds; then, when SECRET_KEY is set here, the environment the operator really has
# (DEBUG as given, or the production default when unset).
CHECK_DEPLOY_ENV = DEBUG=false ALLOWED_HOSTS=inventory.example.com,.inventory.example.com BASE_DOMAIN=inventory.example.com
check-deploy: $(DEPS_STAMP)
	env $(CHECK_DEPLOY_ENV) SECRET_KEY=$$($(BIN)/python -c 'import secrets;print(secrets.token_urlsafe(50))') \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING
	@if [ -n "$$SECRET_KEY" ]; then \
	  echo "check --deploy in this environment:"; \
	  $(if $(CALLER_DEBUG),,env -u DEBUG) $(BIN)/python manage.py check --deploy --fail-level WARNING; \
	else echo "(SECRET_KEY is not set here, so only the example was checked; run it where production's environment is.)"; fi

db-stop: $(DEPS_STAMP)
	@$(BIN)/python -c "from config.embedded_db import stop; print('stopped' if stop() else 'not running')"

psql: $(DEPS_STAMP)
	@$(BIN)/python scripts/psql.py

clean: db-stop
	rm -rf $(VENV) .pgdata var staticfiles
