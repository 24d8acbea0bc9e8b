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
# Python 3.11's bundled pip (23.2) fails to resolve lxml[html-clean] (readability-lxml's
# requirement) beside lxml: "Candidate is not for this requirement". pip 24 resolves it.
if ! .venv/bin/python -c 'import pip, sys; sys.exit(int(pip.__version__.split(".")[0]) < 24)'; then
  "${pip[@]}" -q "pip>=24"
fi

# torch first and pinned: 2.13.0 (CPU) lies on disk here; anything else is a multi-GB CUDA download.
if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  step "Installing torch 2.13.0 (CPU)"
  "${pip[@]}" torch==2.13.0
fi

# llama.cpp is built for this CPU's instruction sets, never with -march=native: these CPUs
# advertise AMX and a native build crashes in ggml_backend_amx_mul_mat. AVX-512 (with VNNI and
# BF16) reads prompts 1.4x faster than AVX2 here (bench/README.md), so it is used where the CPU
# has it. Each variant's wheel is cached in ~/.cache/rag/wheels: built once (~5 min), and
# never mixed up with another CPU's build (pip's own cache ignores CMAKE_ARGS).
llama_version=0.3.36
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { for f in "$@"; do [[ " $cpu_flags " == *" $f "* ]] || return 1; done; }
base="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
if has avx512f avx512bw avx512vl avx512dq avx512_vnni avx512_bf16 avx512vbmi avx2 fma f16c; then
  variant=avx512-vnni-bf16
  cmake_args="$base -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"
elif has avx2 fma f16c; then
  variant=avx2; cmake_args=$base
else
  variant=generic; cmake_args="-DGGML_NATIVE=OFF"
fi
marker=.venv/llama-cpp-build
if [[ "$(cat "$marker" 2>/dev/null)" != "$llama_version $variant" ]] \
    || ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  wheels=${RAG_WHEEL_CACHE:-$HOME/.cache/rag/wheels}/llama-cpp-python-$llama_version-$variant
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    step "Building llama-cpp-python $llama_version for this CPU ($variant; about 5 minutes, once)"
    rm -rf "$wheels.partial" && mkdir -p "$wheels.partial"
    CMAKE_ARGS="$cmake_args" .venv/bin/python -m pip wheel --disable-pip-version-check \
      --no-deps --no-cache-dir "llama-cpp-python==$llama_version" -w "$wheels.partial"
    rm -rf "$wheels" && mv "$wheels.partial" "$wheels"  # a killed build leaves no wheel behind
  fi
  step "Installing llama-cpp-python ($variant build)"
  "${pip[@]}" -q --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
  "${pip[@]}" -q "llama-cpp-python==$llama_version"  # its dependencies
  echo "$llama_version $variant" >"$marker"
fi

extra=serve
[[ $dev == 1 ]] && extra=dev
step "Installing the rag package and its dependencies ([$extra])"
"${pip[@]}" -q -e ".[$extra]"

step "Preparing the models (once): the default LLM, and the embedding model as ONNX (fp32, int8)"
HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error .venv/bin/python - <<'PY'
from rag.embeddings import make_embeddings
from rag.model_files import ensure_default_model
from rag.settings import Settings

settings = Settings()
print(ensure_default_model(settings.model_cache_dir))
make_embeddings(settings)  # converts the embedding model to ONNX on its first call
PY

if [[ $dev == 1 ]] && ! command -v chromium >/dev/null; then
  step "Installing Chromium for the browser tests"
  sudo=""
  [[ $(id -u) != 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
step "Setup done"
