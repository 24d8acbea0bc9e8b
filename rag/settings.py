"""One typed settings object, read once at the entry point from `RAG_*` variables or `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Everything runs offline: no library may try a model hub or send telemetry. The entry points
# (`rag`, the tests, the benchmarks) put these in the environment before importing libraries.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
}


class Settings(BaseSettings):
    """Every knob of the pipeline. Library code receives this object; it never reads os.environ."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Corpus and index
    corpus_dir: Path = Field(Path("corpus"), description="Folder of articles to ingest.")
    store_dir: Path = Field(
        Path("data/chroma"), description="Where the embedded Chroma store lives."
    )
    collection: str = Field("news", description="Chroma collection name.")
    chroma_host: str | None = Field(
        None,
        description="Use a Chroma server instead of store_dir: a host name (with chroma_port) "
        "or a whole URL such as https://chroma.internal.",
    )
    chroma_port: int = 8000
    chroma_token: SecretStr | None = None
    keyword_dir: Path | None = Field(
        None,
        description="Where `rag ingest` saves the keyword (BM25) index; default: "
        "<store_dir>/keywords. With a Chroma server: a folder the ingest job writes and every "
        "app instance reads (a shared volume); unset there, each instance builds the keyword "
        "index in memory at start.",
    )

    # Fetching web pages (`rag fetch`)
    fetch_allowed_networks: list[str] = Field(
        default_factory=list,
        description='Non-public networks `rag fetch` may reach, e.g. ["10.0.0.0/8"]; all other '
        "loopback, private and link-local addresses are refused, after DNS resolution and on "
        "every redirect.",
    )
    fetch_timeout: float = Field(20.0, gt=0, description="Seconds to wait for a server.")
    fetch_max_mb: float = Field(5.0, gt=0, description="Larger pages are not downloaded.")
    fetch_delay: float = Field(
        1.0, ge=0, description="Seconds between two requests to one host (or its Crawl-delay)."
    )
    fetch_max_pages: int = Field(200, ge=1, description="Pages one `rag fetch` run downloads.")
    fetch_user_agent: str = Field(
        "rag-fetch/0.1 (news archive)", description="User-Agent sent, and matched in robots.txt."
    )

    # Chunking
    chunk_size: int = Field(1000, ge=200, description="Target chunk length in characters.")
    chunk_overlap: int = Field(200, ge=0, description="Characters of overlap between chunks.")
    max_file_mb: float = Field(20.0, gt=0, description="Larger files are skipped with a warning.")
    corpus_links: Literal["skip", "inside"] = Field(
        "skip",
        description="Symbolic links in the corpus: skip (each with its reason), or follow links "
        "to files that stay inside the corpus folder. Links that lead outside are always skipped.",
    )

    # Embeddings
    embedding_model: str | None = Field(
        None, description="Path of a sentence-transformers model; default: the packaged MiniLM."
    )
    embedding_backend: Literal["openvino", "onnx", "torch"] = Field(
        "openvino",
        description="openvino: ingest in bfloat16 on OpenVINO where the CPU has it (~2.5x torch), "
        "else as onnx; onnx: ingest in int8 on onnxruntime (~1.5x torch); torch: as is. "
        "Questions run in fp32 on onnxruntime with openvino and onnx.",
    )
    embedding_batch_size: int = 32

    # Retrieval and evidence
    top_k: int = Field(6, ge=1, description="Chunks fetched from the store per question.")
    hybrid: bool = Field(True, description="Fuse BM25 keyword search with dense search.")
    evidence_sentences: int = Field(5, ge=1, description="Sentences shown to the LLM.")
    evidence_max_chars: int = Field(
        1000, ge=200, description="Budget for all evidence text (the prompt the LLM reads)."
    )
    min_relevance: float = Field(
        0.30, description="Cosine similarity below which a sentence is not evidence."
    )
    relative_relevance: float = Field(
        0.70,
        ge=0.0,
        le=1.0,
        description="A sentence scoring below this fraction of the best one's score is not evidence.",
    )
    evidence_neighbours: bool = Field(
        True,
        description="Add the sentence after the best match to the evidence when the budget "
        "allows (it often holds the detail asked for).",
    )
    support_threshold: float = Field(
        0.45,
        description="Embedding similarity that picks the passage an answer sentence cites (and, "
        "with claim_check off, the similarity it needs to be shown).",
    )
    claim_check: bool = Field(
        False,
        description="Check every answer sentence with the trained claim-check model "
        "(rag/models/support): the cited passage must state it.",
    )
    support_min: float = Field(
        0.5, ge=0.0, le=1.0, description="The claim check's score an answer sentence needs."
    )
    max_question_chars: int = 2000
    few_shot: bool = Field(True, description="Show the model two worked examples.")
    retry_refusals: bool = Field(
        True,
        description="Ask again, without the refusal option, when the model refuses despite strong evidence.",
    )

    # LLM
    llm_backend: Literal["llamacpp", "openai", "ollama"] = "llamacpp"
    llm_model_path: Path | None = Field(None, description="A GGUF file; default: packaged Qwen.")
    model_cache_dir: Path = Field(Path.home() / ".cache" / "rag", description="Assembled models.")
    llm_context: int = 4096
    llm_threads: int | None = None
    llm_max_tokens: int = 200
    llm_temperature: float = 0.0
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_api_key: SecretStr | None = None
    ollama_base_url: str = "http://127.0.0.1:11434"
    ollama_model: str = "qwen2.5:1.5b-instruct"

    # Server
    host: str = "127.0.0.1"
    port: int = 7860
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the server answers to besides the bind address, localhost, "
        '127.0.0.1 and [::1], e.g. ["rag.intranet.example"]; other Host headers get 400.',
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Extra origins that may embed the widget and call the API.",
    )
    widget_title: str = Field(
        "Ask the news archive", max_length=80, description="The heading of the widget (/widget)."
    )
    widget_color: str | None = Field(
        None,
        pattern=r"^#[0-9a-fA-F]{6}$",
        description='The widget\'s accent colour (the Ask button), e.g. "#1d4ed8"; it must '
        "keep white text readable (contrast 4.5:1 or more). Unset: the page's.",
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token required by /api/*, /v1/*, /mcp and Gradio's /ask."
    )
    queue_limit: int = Field(16, ge=1, description="Requests waiting for the LLM before 503.")
    rate_limit_per_minute: int = Field(30, ge=1, description="Questions per client per minute.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies whose X-Forwarded-For names the client (for the rate "
        'limit), e.g. ["127.0.0.1"]; empty: the client is whoever connects.',
    )
    max_body_kb: int = Field(
        1024, ge=1, description="Largest request body in KiB (nginx's default); larger get 413."
    )
    request_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a whole request (headers and body); slower "
        "connections are closed.",
    )
    max_connections: int = Field(
        500, ge=2, description="Open connections at once; requests beyond it get 503."
    )
    max_connections_per_client: int = Field(
        50,
        ge=1,
        description="Open connections from one address (trusted proxies excepted); more are "
        "closed at once.",
    )

    def secret_values(self) -> list[str]:
        """The values of the secret settings that are set, to keep out of pages and logs."""
        values = (getattr(self, name) for name in type(self).model_fields)
        return [
            v.get_secret_value()
            for v in values
            if isinstance(v, SecretStr) and v.get_secret_value()
        ]
