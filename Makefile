# Nano Banana Studio: the commands a newcomer needs.
#   make demo   install, migrate, render a sample music video to out/demo.mp4
#   make test   the whole test suite (starts Postgres and Redis if they are installed but down)
#   make serve  web server + one worker on Redis, for the browser

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DJANGO_SETTINGS_MODULE := studio_site.settings

.PHONY: install demo test serve migrate lint typecheck clean

$(STAMP): requirements/base.txt requirements/gpu.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0

demo: migrate
	$(BIN)/python manage.py demo -o out/demo.mp4

test: $(STAMP)
	scripts/test.sh

serve: migrate
	scripts/serve.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf out staticfiles .pytest_cache .mypy_cache .ruff_cache
