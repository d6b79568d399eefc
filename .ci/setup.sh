#!/bin/sh
# Set up a development checkout: a virtual environment in .venv with the package (editable) and
# the test tools, and the real Helm 3 and Helm 4 binaries and Helmfile 0.166 in the cache. Safe to re-run.
set -eu
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' 'ruff==0.17.6'
sh .ci/get-helm.sh
PYTHON=.venv/bin/python sh .ci/get-helmfile.sh
