# `make demo` and `make test` are the README's two commands; both create .venv when missing.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.aligngemini-installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test test-fast demo photos bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

demo: install photos
	rm -rf demo_output
	$(PY) -m aligngemini.demo --out demo_output

# More real photos for the demo (Debian's wallpaper packages); best effort: scikit-image's
# bundled photos are enough when apt is unavailable or we are not root.
photos:
	-@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -qq --no-install-recommends lomiri-wallpapers-16.04 mate-backgrounds >/dev/null 2>&1 || \
		(apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends lomiri-wallpapers-16.04 mate-backgrounds >/dev/null 2>&1) || \
		echo "note: Debian wallpapers not installed; the demo uses scikit-image's photos only"; fi

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf demo_output runs .pytest_cache
