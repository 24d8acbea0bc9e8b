"""The embedding model exported once to ONNX (fp32 fused, int8, and plain for OpenVINO)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from rag.errors import ModelError

ONNX_RECIPE = "fused-int8-v2"  # bump when the export recipe below changes
ONNX_FP32, ONNX_INT8, ONNX_PLAIN = "fused.onnx", "int8.onnx", "plain.onnx"


def ensure_onnx_model(model_dir: Path, cache_dir: Path, name: str = "") -> Path:
    """Export the sentence-transformers model at `model_dir` to ONNX once; return the folder.

    It holds `fused.onnx` (fp32, attention and layer norms fused: the same vectors as torch),
    `int8.onnx` (weights and activations quantized to int8: about 1.5x faster, vectors at
    cosine ~0.99), and `plain.onnx` (the unfused export, standard ONNX ops, which OpenVINO
    reads). The export runs offline from the local files, with torch, in seconds.
    """
    source = model_dir / "model.safetensors"
    if not source.exists():
        source = model_dir / "pytorch_model.bin"
    if not source.exists():
        raise ModelError(f"No model weights in {model_dir}; cannot make the ONNX model.")
    size = source.stat().st_size
    key = hashlib.sha256(f"{model_dir.resolve()}|{size}|{ONNX_RECIPE}".encode()).hexdigest()
    target = cache_dir / "onnx" / f"{name or model_dir.name}-{ONNX_RECIPE}-{key[:12]}"
    if (target / ONNX_INT8).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".tmp{os.getpid()}-{key[:12]}"
    work.mkdir(exist_ok=True)
    try:
        _export_int8(model_dir, work)
        (work / "exported.onnx").rename(work / ONNX_PLAIN)  # standard ops only: for OpenVINO
        try:
            os.replace(work, target)  # atomic: never a half-made folder under the name
        except OSError:
            if not (target / ONNX_INT8).exists():  # not another process winning the race
                raise
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"Could not convert the embedding model to ONNX ({exc}). "
            "Set RAG_EMBEDDING_BACKEND=torch to use it without conversion."
        ) from exc
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return target


def _export_int8(model_dir: Path, work: Path) -> None:
    import logging
    import warnings

    import torch
    from sentence_transformers import SentenceTransformer

    # Eager attention exports as plain ops that onnxruntime's optimizer fuses into one Attention.
    st = SentenceTransformer(
        str(model_dir),
        device="cpu",
        local_files_only=True,
        model_kwargs={"attn_implementation": "eager"},
    )
    bert: Any = st[0].auto_model
    bert.eval()
    config = bert.config

    class TokenVectors(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = torch.ones((2, 8), dtype=torch.int64)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenVectors(),
            (example, example, torch.zeros_like(example)),
            str(work / "exported.onnx"),
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "token_embeddings"]},
            opset_version=17,
            dynamo=False,
        )
    logging.disable(logging.WARNING)  # the quantizer warns on the root logger about pre-processing
    try:
        _fuse_and_quantize(work, config)
    finally:
        logging.disable(logging.NOTSET)


def _fuse_and_quantize(work: Path, config: Any) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(work / "exported.onnx"),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=1,
    )
    fused.save_model_to_file(str(work / ONNX_FP32))
    quantize_dynamic(
        str(work / ONNX_FP32),
        str(work / ONNX_INT8),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=False,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
