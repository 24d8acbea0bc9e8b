"""Stage 3: the packaged MiniLM on onnxruntime, OpenVINO and torch, sentence vectors, storage."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rag.chunking import split_sentences
from rag.embeddings import make_embeddings
from rag.embeddings.export import ONNX_FP32, ONNX_INT8, ONNX_PLAIN, ensure_onnx_model
from rag.embeddings.onnx import OnnxEncoder
from rag.embeddings.torch import TorchEncoder
from rag.settings import Settings
from rag.store import pack_spans, pack_vectors, unpack_spans, unpack_vectors
from tests.conftest import OFF_RAMP, article_text

TEXTS = [
    "India launched airstrikes on a camp in Pakistan.",
    "The mayor said 200 homes were damaged by the floods in Leeds.",
    article_text(OFF_RAMP)[:900],
]


@pytest.fixture(scope="module")
def torch_encoder():
    return make_embeddings(Settings(embedding_backend="torch"))


def test_default_backend_is_openvino_and_matches_sentence_transformers(embeddings, torch_encoder):
    from sentence_transformers import SentenceTransformer

    from rag.embeddings import default_embedding_path
    from rag.embeddings.openvino import OpenVinoEncoder

    assert isinstance(embeddings, OpenVinoEncoder) and isinstance(torch_encoder, TorchEncoder)
    fresh = make_embeddings(Settings())
    fresh.encode(TEXTS)
    assert fresh._bulk is None, "the ingest model loads only when something is ingested"
    reference = SentenceTransformer(str(default_embedding_path()), device="cpu").encode(
        TEXTS, normalize_embeddings=True
    )
    for encoder in (embeddings, torch_encoder):
        vectors = encoder.encode(TEXTS)
        assert vectors.shape == (3, 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        # Questions and answer checks use the exact path: the same vectors as the reference.
        assert np.min(np.sum(vectors * reference, axis=1)) > 0.9999


def test_bulk_int8_vectors_stay_close_to_the_reference(torch_encoder):
    int8 = make_embeddings(Settings(embedding_backend="onnx"))
    assert isinstance(int8, OnnxEncoder) and "OpenVino" not in type(int8).__name__
    spans = [split_sentences(t) for t in TEXTS]
    fast, fast_sentences = int8.encode_with_sentences(TEXTS, spans)
    slow, slow_sentences = torch_encoder.encode_with_sentences(TEXTS, spans)
    assert np.min(np.sum(fast * slow, axis=1)) > 0.97
    for a, b in zip(fast_sentences, slow_sentences, strict=True):
        assert a.shape == b.shape
        assert np.min(np.sum(a * b, axis=1)) > 0.95


def test_openvino_backend_matches_the_reference(torch_encoder):
    import openvino

    from rag.embeddings.openvino import OpenVinoEncoder

    encoder = make_embeddings(Settings(embedding_backend="openvino"))
    assert isinstance(encoder, OpenVinoEncoder)
    exact, reference = encoder.encode(TEXTS), torch_encoder.encode(TEXTS)
    assert np.min(np.sum(exact * reference, axis=1)) > 0.9999  # fp32: the same vectors
    spans = [split_sentences(t) for t in TEXTS]
    bulk, bulk_sentences = encoder.encode_with_sentences(TEXTS, spans)
    slow, slow_sentences = torch_encoder.encode_with_sentences(TEXTS, spans)
    if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert "OpenVinoEncoder" in encoder.bulk.__qualname__  # ingest runs on OpenVINO
        text_floor, sentence_floor = 0.995, 0.99  # bfloat16
    else:
        text_floor, sentence_floor = 0.97, 0.95  # int8 on onnxruntime, as the onnx backend
    assert np.min(np.sum(bulk * slow, axis=1)) > text_floor
    for a, b in zip(bulk_sentences, slow_sentences, strict=True):
        assert a.shape == b.shape and np.min(np.sum(a * b, axis=1)) > sentence_floor


def test_sentence_vectors_come_from_the_texts_own_pass(torch_encoder):
    text = "Heavy rain flooded Leeds on Monday. The mayor said 200 homes were damaged."
    spans = split_sentences(text)
    vectors, (sentences,) = torch_encoder.encode_with_sentences([text], [spans])
    assert sentences.shape == (2, 384)
    assert np.allclose(np.linalg.norm(sentences, axis=1), 1.0, atol=1e-4)
    query = torch_encoder.encode(["How many homes were damaged?"])[0]
    assert sentences[1] @ query > sentences[0] @ query  # each vector is about its own sentence
    # Not the same as embedding the sentence alone: its tokens saw the whole text.
    alone = torch_encoder.encode([text[slice(*spans[1])]])[0]
    assert 0.6 < float(sentences[1] @ alone) < 0.999


def test_a_sentence_beyond_the_token_limit_is_embedded_alone(embeddings):
    filler = "word " * 400  # far over the model's 256 tokens
    text = filler + "The last sentence names Leeds."
    tail = (len(filler), len(text))
    _, (sentences,) = embeddings.encode_with_sentences([text], [[(0, len(filler) - 1), tail]])
    alone = embeddings.encode([text[slice(*tail)]])[0]
    assert np.all(np.isfinite(sentences))
    assert float(sentences[1] @ alone) > 0.97


@pytest.mark.models  # exports the real model with torch
def test_onnx_model_is_made_once_and_reused(tmp_path, monkeypatch):
    from rag.embeddings import default_embedding_path
    from rag.embeddings import export as model_files

    started = time.perf_counter()
    folder = ensure_onnx_model(default_embedding_path(), tmp_path)
    assert all((folder / name).is_file() for name in (ONNX_FP32, ONNX_INT8, ONNX_PLAIN))
    assert (folder / ONNX_INT8).stat().st_size < (folder / ONNX_FP32).stat().st_size / 3
    assert time.perf_counter() - started < 300

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(model_files, "_export_int8", no_export)
    assert ensure_onnx_model(default_embedding_path(), tmp_path) == folder
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp")]


def test_vectors_and_spans_pack_compactly_and_round_trip():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(7, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    packed = pack_vectors(vectors)
    assert len(packed) < 7 * 386 * 4 / 3 + 4  # int8 + a float16 scale per row, base64
    back = unpack_vectors(packed, 384)
    assert np.min(np.sum(back * vectors, axis=1) / np.linalg.norm(back, axis=1)) > 0.999
    spans = [(0, 12), (13, 140), (141, 300)]
    assert unpack_spans(pack_spans(spans)) == spans
