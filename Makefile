# The two set-up commands of the README:
#   make quickstart   install tflm in .venv, train a small translation model on the shipped sample,
#                     evaluate it, and translate sentences with it
#   make test         install tflm with its test extras in .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= runs/quickstart

.PHONY: install quickstart test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

quickstart: install
	$(BIN)/tflm train --run-dir $(RUN) --preset small --vocab-size 2000 --batch-tokens 1024 --learning-rate 0.002 \
	    --time-budget 3m --epochs 100
	$(BIN)/tflm evaluate --run-dir $(RUN)
	$(BIN)/tflm translate --run-dir $(RUN) "Where is the train station?" "I love you." "Tom is reading a book."

# Two processes, each test file whole in one (its module fixtures made once): 13 minutes instead of 20 on 2 cores.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) runs
