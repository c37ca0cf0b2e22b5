#!/bin/sh
# One set-up for a fresh machine: a local virtual environment (.venv) with the right PyTorch build and genremert, then
# the main job, the tests or the linters. `make demo` / `make test` / `make lint` call this script; so does .ci/run.
#
#   sh scripts/setup_env.sh demo [demo.py flags]     # .venv, then: python demo.py (the attention study, quick version)
#   sh scripts/setup_env.sh test [pytest flags]      # .venv with the test tools, then: python -m pytest -q tests
#   sh scripts/setup_env.sh lint                     # .venv with the test tools, then: ruff check, ruff format --check
#   sh scripts/setup_env.sh setup [dev]              # the set-up alone
#
# .venv is reused when it is complete and its stamp matches: the stamp is a hash of pyproject.toml, setup.cfg and the
# torch version, so editing the requirements reinstalls them (pip then installs only what changed). PyTorch: the CUDA
# build from the package index where `nvidia-smi` finds a GPU; otherwise the CPU build, from PyTorch's CPU wheel index
# when it answers within 5 s (a plain `pip install torch` on Linux pulls the CUDA build: several GB), else from the
# configured package index, said in one line. Every step prints one line starting with "setup:".
#
# Environment: PYTHON (the interpreter .venv is made from; default python3, >= 3.10), VENV (default .venv),
# TORCH_VERSION (default 2.13.0, the version CI runs), TORCH_CPU_INDEX (default https://download.pytorch.org/whl/cpu).
set -eu

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
PROBE_SECONDS=5
STAMP="$VENV/.genremert-setup-stamp"
VPY="$VENV/bin/python"

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '5,8p' "$0" | sed 's/^# *//' >&2
    exit 2
}

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' on PATH: install Python >= 3.10, or set PYTHON=/path/to/python3."
    version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "$PYTHON is Python $version; genremert needs >= 3.10 (set PYTHON=/path/to/python3.10 or newer)."
}

# The key of a complete set-up: what decides what gets installed.
stamp_key() {
    "$PYTHON" -c 'import hashlib, sys
digest = hashlib.sha256()
for path in sys.argv[1:]:
    digest.update(open(path, "rb").read())
print(digest.hexdigest()[:16])' pyproject.toml setup.cfg
}

# Whether .venv holds what `extras` needs: its python runs, torch and genremert (from this checkout) import, and for
# "dev" pytest and ruff are there. Looked up without importing them (fast).
venv_complete() {
    [ -x "$VPY" ] || return 1
    "$VPY" - "$1" "$(pwd)" <<'EOF' >/dev/null 2>&1
import importlib.util, os, sys

extras, checkout = sys.argv[1], os.path.realpath(sys.argv[2])
names = ["torch", "transformers", "genremert"] + (["pytest", "ruff"] if extras == "dev" else [])
specs = [importlib.util.find_spec(name) for name in names]
if any(spec is None for spec in specs):
    sys.exit(1)
genremert = os.path.realpath(specs[names.index("genremert")].origin)
sys.exit(0 if genremert.startswith(checkout + os.sep) else 1)  # a moved checkout needs its editable install again
EOF
}

stamp_matches() {
    [ -f "$STAMP" ] || return 1
    line=$(cat "$STAMP")
    case "$1" in
    dev) [ "$line" = "$(stamp_key) torch==$TORCH_VERSION dev" ] ;;
    *) [ "$line" = "$(stamp_key) torch==$TORCH_VERSION dev" ] || [ "$line" = "$(stamp_key) torch==$TORCH_VERSION base" ] ;;
    esac
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

# pip into a venv made without it (no ensurepip): run the pip wheel from PyPI on itself.
bootstrap_pip() {
    say "bootstrap pip into $VENV from PyPI's pip wheel (no ensurepip here)"
    wheel=$("$VPY" - "$VENV" <<'EOF'
import json, os, sys, urllib.parse, urllib.request

index = "https://pypi.org/pypi/pip/json"
release = json.load(urllib.request.urlopen(index, timeout=30))
entry = next(f for f in release["urls"] if f["filename"].endswith("-py3-none-any.whl"))
path = os.path.join(sys.argv[1], entry["filename"])  # pip reads the wheel's name: keep it
urllib.request.urlretrieve(urllib.parse.urljoin(index, entry["url"]), path)  # a mirror may answer relative URLs
print(path)
EOF
)
    "$VPY" "$wheel/pip" install -q "$wheel"
    rm -f "$wheel"
}

make_venv() {
    if [ -d "$VENV" ]; then
        say "$VENV is incomplete or out of date: recreating it"
        rm -rf "$VENV"
    fi
    say "create $VENV with $PYTHON ($version)"
    log=$(mktemp)
    if "$PYTHON" -m venv "$VENV" 2>"$log"; then
        rm -f "$log"
        return 0
    fi
    rm -rf "$VENV"
    say "'$PYTHON -m venv' failed ($(tail -n 1 "$log")); on Debian/Ubuntu the python3-venv package provides it"
    rm -f "$log"
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
        say "apt-get install python3-venv python$version-venv"
        if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; then
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$version-venv" >/dev/null 2>&1 || true
            "$PYTHON" -m venv "$VENV" && return 0
            rm -rf "$VENV"
        else
            say "apt-get could not install python3-venv: going on without it"
        fi
    fi
    say "create $VENV without pip, then add pip"
    "$PYTHON" -m venv --without-pip "$VENV" || die "'$PYTHON -m venv --without-pip $VENV' failed: install python3-venv."
    bootstrap_pip
}

# Reachable within PROBE_SECONDS? A DNS failure or a firewall answers at once; a black hole is cut by the timeout.
reachable() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -m "$PROBE_SECONDS" -o /dev/null "$1" 2>/dev/null
    else
        "$PYTHON" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).close()' "$1" "$PROBE_SECONDS" 2>/dev/null
    fi
}

install_torch() {
    installed=$("$VPY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)
    case "$installed" in
    "$TORCH_VERSION" | "$TORCH_VERSION"+*)
        say "torch $installed is already in $VENV"
        return 0
        ;;
    esac
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        say "GPU found (nvidia-smi): pip install torch==$TORCH_VERSION, the CUDA build, from the package index"
        "$VPY" -m pip install -q "torch==$TORCH_VERSION"
    elif [ "$(uname -s)" != Linux ]; then
        say "$(uname -s): pip install torch==$TORCH_VERSION from the package index (its build for this system)"
        "$VPY" -m pip install -q "torch==$TORCH_VERSION"
    elif reachable "$TORCH_CPU_INDEX/torch/"; then
        say "no GPU (no nvidia-smi): pip install torch==$TORCH_VERSION, the CPU build, from $TORCH_CPU_INDEX"
        "$VPY" -m pip install -q --index-url "$TORCH_CPU_INDEX" "torch==$TORCH_VERSION"
    else
        say "no GPU, and $TORCH_CPU_INDEX is not reachable (a ${PROBE_SECONDS} s probe): pip install torch==$TORCH_VERSION" \
            "from the configured index instead (a local +cpu wheel where pip's find-links has one; PyPI's Linux" \
            "wheel is the CUDA build, several GB)"
        "$VPY" -m pip install -q "torch==$TORCH_VERSION"
    fi
}

# setup base|dev: a complete .venv for genremert (dev: with the test tools).
setup() {
    extras=$1
    check_python
    if venv_complete "$extras" && stamp_matches "$extras"; then
        say "$VENV is complete and up to date (stamp $(stamp_key)): nothing to install"
        return 0
    fi
    if ! [ -x "$VPY" ] || ! "$VPY" -c 'import pip' >/dev/null 2>&1; then
        make_venv
    else
        say "reuse $VENV (its requirements changed or are missing)"
    fi
    install_torch
    if [ "$extras" = dev ]; then
        say "pip install -e '.[dev]': genremert and its requirements, with the test tools (pytest, ruff, nnAudio)"
        "$VPY" -m pip install -q -e ".[dev]"
    else
        say "pip install -e .: genremert and its requirements"
        "$VPY" -m pip install -q -e .
    fi
    venv_complete "$extras" ||
        die "$VENV is still incomplete after the installs (torch, transformers, genremert and for the tests pytest" \
            "and ruff must be importable from it): see pip's messages above."
    printf '%s torch==%s %s\n' "$(stamp_key)" "$TORCH_VERSION" "$extras" >"$STAMP"
    say "$VENV is ready (stamp $(stamp_key))"
    command -v ffmpeg >/dev/null 2>&1 ||
        say "note: no ffmpeg binary: m4a/aac/wma files cannot be decoded, and the test that needs it is skipped" \
            "(apt-get install ffmpeg / brew install ffmpeg)"
}

[ $# -ge 1 ] || usage
verb=$1
shift
case "$verb" in
setup)
    setup "${1:-base}"
    ;;
demo)
    setup base
    say "run: $VPY demo.py $*"
    exec "$VPY" demo.py "$@"
    ;;
test)
    setup dev
    say "run: $VPY -m pytest -q tests $*"
    exec "$VPY" -m pytest -q tests "$@"
    ;;
lint)
    setup dev
    say "run: ruff check . && ruff format --check ."
    "$VPY" -m ruff check .
    exec "$VPY" -m ruff format --check .
    ;;
*)
    usage
    ;;
esac
