"""The connection to Chroma: an embedded on-disk store, or a Chroma server (with the fix when
it cannot be used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag.errors import SettingsError, StoreUnavailableError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

    from rag.settings import Settings


def make_client(settings: Settings) -> ClientAPI:
    """An embedded on-disk Chroma, or a Chroma server when `chroma_host` is set."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        headers = {}
        if settings.chroma_token:
            headers["Authorization"] = f"Bearer {settings.chroma_token.get_secret_value()}"
        try:
            return chromadb.HttpClient(
                host=settings.chroma_host,
                port=settings.chroma_port,
                headers=headers,
                settings=chroma_settings,
            )
        except Exception as exc:  # chromadb raises ValueError or bare Exception by cause
            raise _server_problem(settings, headers, exc) from exc
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.store_dir), settings=chroma_settings)


def server_url(settings: Settings) -> str:
    """The Chroma server's base URL: RAG_CHROMA_HOST as a host name with RAG_CHROMA_PORT, or a
    whole URL (`https://chroma.example.com`), whose own port then counts, as in chromadb."""
    host = str(settings.chroma_host).rstrip("/")
    return (
        host
        if host.startswith(("http://", "https://"))
        else f"http://{host}:{settings.chroma_port}"
    )


def index_location(settings: Settings) -> str:
    """Where the index lives, for messages: the server address or the store folder."""
    if settings.chroma_host:
        return f"on the Chroma server at {server_url(settings)}"
    return f"at {settings.store_dir}"


def _server_problem(settings: Settings, headers: dict[str, str], exc: Exception) -> SettingsError:
    """Why a Chroma server could not be used, found by asking it once more, and the fix."""
    import httpx

    url = server_url(settings)
    try:
        status = httpx.get(f"{url}/api/v2/auth/identity", headers=headers, timeout=10).status_code
    except httpx.HTTPError as probe:
        return StoreUnavailableError(
            f"Cannot reach the Chroma server at {url} ({type(probe).__name__}: {probe}). Start "
            "it (`chroma run --path <folder> --host <address> --port <port>`) or fix "
            "RAG_CHROMA_HOST / RAG_CHROMA_PORT."
        )
    if status in (401, 403) and settings.chroma_token:
        return SettingsError(
            f"The Chroma server at {url} refused the token in RAG_CHROMA_TOKEN "
            f"(HTTP {status}). Set RAG_CHROMA_TOKEN to the token the server expects."
        )
    if status in (401, 403):
        return SettingsError(
            f"The Chroma server at {url} requires a token (HTTP {status}). "
            "Set RAG_CHROMA_TOKEN in .env (not on the command line)."
        )
    return SettingsError(
        f"The server at {url} did not answer like a Chroma 1.x server (HTTP {status}: {exc}). "
        "Point RAG_CHROMA_HOST / RAG_CHROMA_PORT at `chroma run` (chromadb 1.x)."
    )
