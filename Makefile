# The README's two commands are `make book` and `make test`; both create the
# environment (.venv) when it is missing and install everything into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.dgm-installed
LIBRARY := $(shell find src/dgm -name '*.py' -o -name '*.npz')
LIBRARY_STAMP := _build/.dgm-library-stamp

.PHONY: book test bench student check-site vendor sync record env clean assignments

env: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[book,test]'
	touch $@

# The execution cache keys on a page's own text: when the library changes,
# clear it, and the doctrees that tell Sphinx a page is up to date, so that every
# page runs again against the new code.
$(LIBRARY_STAMP): $(LIBRARY)
	rm -rf _build/.jupyter_cache _build/.doctrees
	mkdir -p _build
	touch $@

## Build the website into _build/html (runs the book/ pages; notebooks show their recorded runs).
book: $(INSTALLED) $(LIBRARY_STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

## Run every test: library, derivations, notebook pairs, the student edition, and each page and notebook (quick profile).
# Two workers, each file on one worker (nbval needs a notebook's cells together), one BLAS thread each.
# The library stamp first: tests/test_book.py builds both editions through the execution cache, so a library
# change runs the pages again there too, and `make book` afterwards (as in .ci/run) finds the pages that build ran.
test: $(INSTALLED) $(LIBRARY_STAMP)
	DGM_PROFILE=quick DGM_PROGRESS=0 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile

## Time the library's training steps against plain hand-written PyTorch loops, side by side (ratios printed).
bench: $(INSTALLED)
	OMP_NUM_THREADS=1 $(BIN)/python bench/bench.py

## Build the student edition (no solutions): its sources and notebooks in _build/student/repo (a repository to publish), its site in _build/student/_build/html.
student: $(INSTALLED) $(LIBRARY_STAMP)
	$(BIN)/python tools/build_student.py

## Build one assignment notebook per chapter into _build/assignments/student and the instructor's key into
## _build/assignments/instructor/key.toml (seeded from the book: public answers); KEY=my_key.toml uses your own.
assignments: $(INSTALLED)
	$(BIN)/python tools/build_assignments.py $(if $(KEY),--key $(KEY))

## Check the built site in headless Chromium, offline, at desktop and phone widths; screenshots go to _build/screenshots.
check-site: book
	$(BIN)/python tools/check_site.py

## Refresh the vendored MathJax, RequireJS and widget manager in _vendor/ (needs npm; only to change a version).
vendor:
	$(PYTHON) tools/vendor_web.py

## After editing a notebook's or a page's .md: update its Colab install cell and its paired .ipynb.
sync: $(INSTALLED)
	$(BIN)/python tools/sync_colab_cell.py

## Re-record a training notebook's outputs in the full profile: make record NB=notebooks/vae_mnist.ipynb
record: $(INSTALLED)
	$(BIN)/python tools/record_run.py $(NB) --profile full

clean:
	rm -rf _build
