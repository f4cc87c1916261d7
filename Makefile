# The two set-up commands of the README are `make run` and `make test`.
# Both create (or reuse) .venv and install facekit into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --quiet --disable-pip-version-check
export PIP_NO_INPUT := 1

.PHONY: run test lint browser-deps notebooks clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt torch==2.13.0 > $(VENV)/pip.log 2>&1 \
	  || { grep -v "is ignored" $(VENV)/pip.log; exit 1; }
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e ".[dev,gpu]" > $(VENV)/pip.log 2>&1 \
	  || { grep -v "is ignored" $(VENV)/pip.log; exit 1; }
	$(BIN)/python -c "import facekit, torch, nbval, papermill, cv2, skimage" && touch $(STAMP)

# The main job: the notebook curriculum through papermill at the default profile,
# writing executed notebooks and metric records under results/.
run: $(STAMP)
	$(BIN)/facekit run --profile $${FACEKIT_PROFILE:-cpu}

lint: $(STAMP)
	$(BIN)/ruff check facekit tests benchmarks notebooks

# Chromium for the browser tests, from Debian, when we are root and it is missing.
# Without it the browser tests skip and say why.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	  || echo "chromium not installed: the browser tests will skip"; }

# The whole test suite: lint, unit tests, notebooks re-executed at smoke under nbval, browser tests.
test: $(STAMP) browser-deps
	$(BIN)/ruff check facekit tests benchmarks notebooks
	FACEKIT_CACHE=$${FACEKIT_CACHE:-$(CURDIR)/.cache/test} \
	FACEKIT_ASSETS=$${FACEKIT_ASSETS:-$$( [ -d ../shared/assets ] && cd ../shared/assets && pwd )} \
	FACEKIT_PROFILE=smoke MPLBACKEND=Agg \
	$(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider --durations=15

# Re-execute the committed notebooks at the cpu profile, in place (what the repo ships).
notebooks: $(STAMP)
	cd notebooks && FACEKIT_PROFILE=cpu ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace [0-9][0-9]_*.ipynb

clean-venv:
	rm -rf $(VENV)
