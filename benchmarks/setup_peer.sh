#!/usr/bin/env bash
# Build the virtual environment of the PyTorch NequIP peer, as benchmarks/PEER.md says:
# CPU torch 2.13.0 first, pinned, then nequip 0.19.1. Idempotent; prints the venv's python.
# Usage: bash benchmarks/setup_peer.sh [VENV_DIR]   (default benchmarks/.peer-venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/.peer-venv}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import nequip, torch" 2>/dev/null; then
  echo "$venv/bin/python"; exit 0
fi
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --upgrade pip >&2
"$venv/bin/pip" install -q torch==2.13.0 >&2
echo "torch==2.13.0" > "$venv/torch-pin.txt"
"$venv/bin/pip" install -q "nequip==0.19.1" -c "$venv/torch-pin.txt" >&2
echo "$venv/bin/python"
