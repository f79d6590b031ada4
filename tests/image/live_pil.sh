#!/bin/sh
# Regenerates the expected outputs with the installed python3-pil + numpy and compares graft
# against them (catches a committed expectation that drifted from what PIL does today).
# usage: live_pil.sh TEST_BINARY TESTS_IMAGE_DIR WORKDIR; exits 77 (skipped) without PIL.
set -e
bin=$1; src=$2; work=$3
if ! /usr/bin/python3 -c 'import PIL, numpy' 2>/dev/null; then
    echo "python3-pil/numpy not installed: live comparison skipped"
    exit 77
fi
rm -rf "$work"
/usr/bin/python3 "$src/make_expected.py" "$work"
exec "$bin" "$work/cases.jsonl" "$src/data"
