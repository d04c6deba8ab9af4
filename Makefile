.PHONY: run test lint check priority-model
run:
	./scripts/run.sh
test:
	./scripts/test.sh
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy .
check: lint test
priority-model:
	./scripts/build-priority-model.sh
