#!/usr/bin/env bash
# Set up a local virtual environment and run the project's main job or its test suite.
#   ./bootstrap.sh run  [abm run options]   install, run the crash preset, write its report (results/crash)
#   ./bootstrap.sh test [pytest options]    install with test extras, run the whole test suite
# Finds a Python >= 3.12 on PATH or through pyenv; says so and stops when there is none.
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "bootstrap: $*" >&2; exit 2; }

find_python() {
    local cand
    for cand in "${ABM_PYTHON:-}" python3.14 python3.13 python3.12 python3 python; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
            command -v "$cand"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        local root; root=$(pyenv root)
        for cand in $(ls -d "$root"/versions/3.1[2-9]* 2>/dev/null | sort -rV); do
            if "$cand/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
                echo "$cand/bin/python"; return 0
            fi
        done
    fi
    return 1
}

ensure_venv() {
    local extras=$1
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        local py
        py=$(find_python) || die "no Python >= 3.12 found (looked on PATH for python3.12+ and in pyenv); install one or set ABM_PYTHON=/path/to/python3.12"
        echo "bootstrap: creating .venv with $py ($("$py" --version 2>&1))"
        rm -rf .venv
        "$py" -m venv .venv
        .venv/bin/python -m pip install --quiet --upgrade pip
    fi
    echo "bootstrap: installing abm[$extras] into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
}

ensure_browser() {
    # The teaching page's browser tests drive Debian's Chromium (Playwright's own download cannot work offline).
    if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "bootstrap: installing Debian's chromium for the browser tests"
        (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "bootstrap: chromium install failed; browser tests will be skipped" >&2
    fi
}

cmd=${1:-}; shift || true
case "$cmd" in
    run)
        ensure_venv app
        .venv/bin/abm run --preset crash --out results/crash "$@"
        .venv/bin/abm report results/crash
        ;;
    test)
        ensure_venv app,test
        ensure_browser
        .venv/bin/python -m abm.app.offline_assets --quiet || echo "bootstrap: offline page assets unavailable; browser tests will be skipped" >&2
        .venv/bin/python -m ruff check .
        .venv/bin/python -m pytest -n 2 "$@"
        ;;
    *)
        die "usage: ./bootstrap.sh run [abm run options] | ./bootstrap.sh test [pytest options]"
        ;;
esac
