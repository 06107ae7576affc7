#!/usr/bin/env bash
# Create or refresh .venv with everything `make demo`, `make test` and `make sim` need.
# Idempotent: a stamp keyed on the dependency files skips the pip step when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)
command -v yosys >/dev/null 2>&1 || need_apt+=(yosys)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "setup: error: ${need_apt[*]} missing and neither root nor sudo available to apt-get install them" >&2
        exit 2
    fi
    echo "setup: installing ${need_apt[*]} from apt"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

stamp="$VENV/.cpt-hw-installed"
want=$(cat requirements.txt pyproject.toml host/pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "setup: installing Python dependencies into $VENV (first run takes a few minutes)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e host -e . 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
"$VENV/bin/python" -c "import torch, cocotb, cocotbext.axi, hls4ml, pynq, cpt_hw, cpt_driver" \
    || { echo "setup: error: the virtual environment in $VENV is incomplete (see pip output above)" >&2; exit 2; }
echo "$want" > "$stamp"
