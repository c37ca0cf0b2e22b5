# The two commands of a newcomer's first hour (README.md), and their neighbours. Each target is one verb of
# scripts/setup_env.sh, which creates or reuses .venv (the right PyTorch build for this machine, then genremert) and
# prints every step; a machine without make runs `sh scripts/setup_env.sh <verb>` instead. .ci/run runs the same verbs.
#
#   make demo    set up .venv, then run the main job: python demo.py (ARGS="--quick" for the seconds-long version)
#   make test    set up .venv with the test tools, then run the test suite (ARGS="-x -k pipeline" to narrow it)
#   make lint    ruff check and ruff format --check on the whole tree, as CI does
#   make setup   the set-up alone (make setup-dev: with the test tools)
#   make clean-venv   remove .venv (the next command rebuilds it)

SH ?= sh
ARGS ?=

.PHONY: demo test lint setup setup-dev clean-venv

demo:
	$(SH) scripts/setup_env.sh demo $(ARGS)

test:
	$(SH) scripts/setup_env.sh test $(ARGS)

lint:
	$(SH) scripts/setup_env.sh lint

setup:
	$(SH) scripts/setup_env.sh setup base

setup-dev:
	$(SH) scripts/setup_env.sh setup dev

clean-venv:
	rm -rf .venv
