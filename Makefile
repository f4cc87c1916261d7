# The two set-up commands of the README are `make run` and `make test`.
# Both create (or reuse) .venv and install facekit into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --quiet --disable-pip-version-check
export PIP_NO_INPUT := 1

.PHONY: run fetch test lint browser-deps notebooks clean-venv

# The ICT-FaceKit assets beside the checkout (the project's machines), else the cache.
ASSETS_ENV = FACEKIT_ASSETS=$${FACEKIT_ASSETS:-$$( [ -d ../shared/assets ] && cd ../shared/assets && pwd )}

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt torch==2.13.0 > $(VENV)/pip.log 2>&1 \
	  || { grep -v "is ignored" $(VENV)/pip.log; exit 1; }
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e ".[dev,gpu]" > $(VENV)/pip.log 2>&1 \
	  || { grep -v "is ignored" $(VENV)/pip.log; exit 1; }
	$(BIN)/python -c "import facekit, torch, nbval, papermill, cv2, skimage" && touch $(STAMP)

# The main job: the notebook curriculum through papermill at the default profile,
# writing executed notebooks and metric records under results/. It first fetches what the
# notebooks can use and is not here yet; offline it goes on without it and says what it skips.
run: fetch
	$(ASSETS_ENV) $(BIN)/facekit run --profile $${FACEKIT_PROFILE:-cpu}

# The explicit downloads (checksummed, resumable, 5 s timeouts), each only when its data is missing.
fetch: $(STAMP)
	@echo "make run: looking for the ICT-FaceKit 3D assets and the ORL photos, fetching what is missing"
	@$(ASSETS_ENV) $(BIN)/python -c "from facekit.synth.assets import find_ict_dir; print('ICT-FaceKit assets:', find_ict_dir())" 2>/dev/null \
	  || { echo "fetching the ICT-FaceKit assets: facekit assets fetch ict"; $(BIN)/facekit assets fetch ict; } \
	  || echo "no ICT-FaceKit assets: notebook 01 skips its ICT-backend figures (later: facekit assets fetch ict)"
	@$(BIN)/python -c "from facekit.real.orl import orl_dir, orl_source; print(orl_source(orl_dir()))" 2>/dev/null \
	  || { echo "fetching the ORL photos: facekit data fetch orl"; $(BIN)/facekit data fetch orl; } \
	  || echo "no ORL photos: notebooks 02, 03, 06 and 07 skip their real-photo sections (later: facekit data fetch orl)"

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
	$(ASSETS_ENV) \
	FACEKIT_PROFILE=smoke MPLBACKEND=Agg \
	$(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider --durations=15

# Re-execute the committed notebooks at the cpu profile, in place (what the repo ships).
notebooks: $(STAMP)
	cd notebooks && FACEKIT_PROFILE=cpu ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace [0-9][0-9]_*.ipynb

clean-venv:
	rm -rf $(VENV)
