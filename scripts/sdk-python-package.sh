#!/usr/bin/env bash
# Builds the Python SDK as it would be published and tests what was built:
#   1. sdist, then the wheel from that sdist (`python -m build`, with the
#      pinned build and hatchling of .tools/venv), into sdk/python/dist;
#   2. `twine check --strict` on both;
#   3. a fresh venv in a temporary directory, the wheel installed into it
#      (not editable) with its test extra, at the versions of
#      sdk/python/constraints.txt;
#   4. the SDK's tests, copied next to that venv and run from there, so
#      `import baton` is the installed package (tests/conftest.py fails the
#      run otherwise).
# The live tests need a broker: in CI,
#   npx tsx test/sdk/run-live.ts bash scripts/sdk-python-package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

ensure_python_packaging
root=$PWD
dist=sdk/python/dist
rm -rf "$dist"
echo "== build" >&2
"$VENV/bin/python" -m build --no-isolation --outdir "$dist" sdk/python >/dev/null
echo "== twine check" >&2
"$VENV/bin/python" -m twine check --strict "$dist"/*
wheels=("$dist"/*.whl)
[ ${#wheels[@]} -eq 1 ] || die "expected one wheel in $dist, found: ${wheels[*]}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== install ${wheels[0]##*/} into a fresh venv" >&2
# Without pip of its own (ensurepip alone takes 20 s on a busy machine):
# .tools/venv's pip installs into it.
python3 -m venv --without-pip "$tmp/venv"
"$VENV/bin/python" -m pip --python "$tmp/venv/bin/python" install --quiet --disable-pip-version-check \
	-c "$root/$PY_CONSTRAINTS" "$root/${wheels[0]}[test]"
cp -r sdk/python/tests "$tmp/tests"
rm -rf "$tmp/tests/__pycache__"

echo "== tests against the installed wheel" >&2
cd "$tmp/tests"
BATON_SDK_EXPECT_INSTALLED=1 "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider .
