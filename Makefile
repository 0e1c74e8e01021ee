# awdvd: `make demo` runs the main job on a bundled example, `make test` runs the tests.
# Both create (or refresh) the local virtual environment .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow bench docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch pinned first so that pip takes the CPU build (a bare `torch` would pull CUDA wheels)
	$(PY) -m pip install --quiet "torch==2.13.0"
	# the napari plugin, bioimage.io export and their tests come with it (the napari tests also need an X
	# server: Debian packages in .ci/run; without one they are skipped with the reason), and the docs' tools
	$(PY) -m pip install --quiet -e ".[test,formats,napari,bioimageio,test-gui,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/awdvd demo -o demo-output --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# the documentation site (mkdocs.yml): any warning fails the build; the CLI and API pages come from the code
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) demo-output .pytest_cache site
