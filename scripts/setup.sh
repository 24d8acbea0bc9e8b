#!/usr/bin/env bash
# Sets up everything in .venv: Python packages, llama.cpp built for this CPU, the default model.
# Safe to re-run: each step is skipped or quick when already done.
#   scripts/setup.sh          # what `make run` needs
#   scripts/setup.sh --dev    # plus test tools and Chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

python=${PYTHON:-}
if [[ -z "$python" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[[ -n "$python" ]] || { echo "Python 3.11 is needed (set PYTHON=/path/to/python3.11)." >&2; exit 1; }

step() { printf '\n==> %s\n' "$*"; }

if [[ ! -x .venv/bin/python ]]; then
  step "Creating .venv with $python"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --disable-pip-version-check)

# torch first and pinned: 2.13.0 (CPU) lies on disk here; anything else is a multi-GB CUDA download.
if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  step "Installing torch 2.13.0 (CPU)"
  "${pip[@]}" torch==2.13.0
fi

# llama.cpp must not be built with -march=native: this CPU advertises AMX and the native build
# crashes in ggml_backend_amx_mul_mat. pip caches the built wheel, so this costs ~15 min once.
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
if ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  step "Installing llama-cpp-python (built from source on first run: about 15 minutes on 2 cores)"
  "${pip[@]}" "llama-cpp-python==0.3.36"
fi

extra=serve
[[ $dev == 1 ]] && extra=dev
step "Installing the rag package and its dependencies ([$extra])"
"${pip[@]}" -q -e ".[$extra]"

step "Assembling and verifying the default model (once)"
.venv/bin/python - <<'PY'
from rag.model_files import ensure_default_model
from rag.settings import Settings

print(ensure_default_model(Settings().model_cache_dir))
PY

if [[ $dev == 1 ]] && ! command -v chromium >/dev/null; then
  step "Installing Chromium for the browser tests"
  sudo=""
  [[ $(id -u) != 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
step "Setup done"
