# The two commands of the README:
#   make run    set up, ingest corpus/, and serve the chat page on http://127.0.0.1:7860
#   make test   set up (with test tools) and run every check: lint and the whole test suite
.PHONY: run test test-fast setup setup-dev ingest serve lint

run: setup ingest serve

test: setup-dev lint
	.venv/bin/python -m pytest

test-fast:
	.venv/bin/python -m pytest -m fast

setup:
	bash scripts/setup.sh

setup-dev:
	bash scripts/setup.sh --dev

ingest:
	.venv/bin/rag ingest

serve:
	.venv/bin/rag serve

lint:
	.venv/bin/ruff check rag ui tests bench scripts ingest.py
	.venv/bin/ruff format --check rag ui tests bench scripts ingest.py
	.venv/bin/mypy
