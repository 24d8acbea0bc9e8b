"""The API's docs, offline: Swagger UI at /docs and ReDoc at /redoc, from the assets the
`fastapi-offline` package ships (served at /docs-assets, no CDN), and the OpenAPI spec completed
with an example of every request and response, the SSE events of /api/ask/stream, and the
`{"error": …}` bodies as the server sends them (`tests/test_apidocs.py` provokes each one and
compares)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from rag.questions import HISTORY_HELP
from rag.schema import Answer
from ui.api import EXAMPLE
from ui.gate import busy_message
from ui.guards import BEARER_HELP
from ui.openai_api import _completion as completion

ASSETS = "/docs-assets"
# The pages may load only from this server: ReDoc's bundle shows a logo from cdn.redoc.ly
# (it hides itself when the image fails), and nothing else may reach out either.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
GET_HEAD = ["GET", "HEAD"]

ANSWER_EXAMPLE: dict[str, Any] = {
    "answer": "A suicide bombing in Kashmir killed 40 Indian soldiers [1].",
    "citations": [
        {
            "n": 1,
            "source": "india-pakistan-off-ramp-after-clash.txt",
            "title": "India and Pakistan May Have an Off-Ramp After Their Clash",
            "quote": "The two nuclear-armed neighbors have been locked in a bitter dispute since "
            "February, when a suicide bombing in Indian-controlled Kashmir killed 40 Indian "
            "soldiers.",
            "start": 193,
            "end": 356,
            "date": None,
            "outlet": None,
            "url": None,
            "author": None,
        }
    ],
    "question": "How many Indian soldiers were killed in the suicide bombing?",
    "refused": False,
    "removed": [],
    "closest": [],
    "checks": [
        {
            "sentence": "A suicide bombing in Kashmir killed 40 Indian soldiers.",
            "verdict": "supported",
            "reason": "",
            "score": 0.97,
            "citations": [1],
            "answers": True,
        }
    ],
}
ASK_EXAMPLES: dict[str, Any] = {
    "question": {
        "summary": "A question",
        "value": {"question": "How many Indian soldiers were killed in the suicide bombing?"},
    },
    "follow-up": {
        "summary": "A follow-up, with the conversation so far as pairs",
        "value": {
            "question": "Who claimed it?",
            "history": [["What happened in Kashmir in February?", ANSWER_EXAMPLE["answer"]]],
        },
    },
    "messages": {
        "summary": "The history as chat messages",
        "value": {
            "question": "Who claimed it?",
            "history": [
                {"role": "user", "content": "What happened in Kashmir in February?"},
                {"role": "assistant", "content": ANSWER_EXAMPLE["answer"]},
            ],
        },
    },
}
SENTENCE_EXAMPLE = {
    "text": ANSWER_EXAMPLE["answer"],
    "citations": ANSWER_EXAMPLE["citations"],
    "check": ANSWER_EXAMPLE["checks"][0],
}
ERROR_EXAMPLES: dict[int, dict[str, str]] = {
    400: {
        "host": "This server does not answer to that host name. If the name is yours, add it "
        "to RAG_ALLOWED_HOSTS.",
        "json": "The request body is not valid JSON (Expecting property name enclosed in double quotes "
        "at character 1). "
        f"Send JSON like {EXAMPLE}.",
    },
    401: {"token": BEARER_HELP},
    403: {"origin": "Requests from https://evil.example are not allowed."},
    404: {"article": "No indexed article has the id 'nope.txt'. GET /api/articles lists them."},
    413: {
        "body": "The request body is over the limit of 1,024 KiB (RAG_MAX_BODY_KB). Send a "
        "shorter question or less history."
    },
    422: {
        "empty": "The question is empty. Type a question about the articles.",
        "missing": "Invalid request: question: Field required",
        "shape": f"Invalid request: the body must be a JSON object like {EXAMPLE} "
        "(Content-Type: application/json)",
        "history": f"Invalid request: {HISTORY_HELP}",
    },
    429: {"rate": "Too many questions: the limit is 30 per minute. Try again in 12 s."},
    503: {
        "loading": "The model is still loading. Try again in a few seconds.",
        "busy": busy_message(16),
    },
}
ERROR_TEXT = {
    400: "The Host header is not an allowed name (RAG_ALLOWED_HOSTS), or the body is not JSON.",
    401: "Missing or wrong bearer token (only when RAG_API_TOKEN is set); `WWW-Authenticate: "
    "Bearer`.",
    403: "A cross-origin write from an origin not in RAG_ALLOWED_ORIGINS.",
    404: "No such article.",
    408: "The request did not arrive within RAG_REQUEST_TIMEOUT seconds; the connection closes.",
    413: "The body is over RAG_MAX_BODY_KB; the connection closes.",
    422: "A bad question or history (empty, too long, malformed), or a body of the wrong shape.",
    429: "Over RAG_RATE_LIMIT_PER_MINUTE for this client; `Retry-After` says when to try again.",
    503: "The model is loading, the index is missing, or RAG_QUEUE_LIMIT questions are already "
    "waiting; `Retry-After` says when to try again.",
}
READ_ERRORS = (400, 401, 408, 429)
WRITE_ERRORS = (400, 401, 403, 408, 413, 422, 429, 503)
SSE_TEXT = """Server-sent events, in this order:

- `sentence` (zero or more): one answer sentence once it has passed the check, `{"text",
  "citations", "check"}`; the sentences joined with spaces are the answer's text.
- `token` (only with `"drafts": true`): `{"text"}`, a piece of the model's unchecked reply.
- `retry` (only with `"drafts": true`): `{}`, the tokens so far are void; a second try follows.
- `answer` (last): the same object as `POST /api/ask`.
- `error` (instead of `answer`, when answering fails after the stream started): `{"error"}`.

Refusals before the stream starts (token, question, rate, readiness, queue) are plain HTTP
errors, as for `/api/ask`."""


SSE_EXAMPLE = (
    f"event: sentence\r\ndata: {json.dumps(SENTENCE_EXAMPLE)}\r\n\r\n"
    f"event: answer\r\ndata: {json.dumps(ANSWER_EXAMPLE)}\r\n\r\n"
)


def add_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets from this machine, and the completed spec."""
    import fastapi_offline

    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount(ASSETS, StaticFiles(directory=static), name="docs-assets")
    spec_url = app.openapi_url or "/openapi.json"

    @app.api_route("/docs", methods=GET_HEAD, include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _local_only(
            get_swagger_ui_html(
                openapi_url=root + spec_url,
                title=f"{app.title} - API",
                swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
                # No badge from validator.swagger.io: nothing is fetched from outside.
                swagger_ui_parameters={"validatorUrl": None, "defaultModelsExpandDepth": 0},
            )
        )

    @app.api_route("/redoc", methods=GET_HEAD, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _local_only(
            get_redoc_html(
                openapi_url=root + spec_url,
                title=f"{app.title} - API",
                redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _local_only(page: HTMLResponse) -> HTMLResponse:
    """The page, with a CSP that lets the browser load nothing from elsewhere."""
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with the error shape, the bearer scheme and an example of every request and
    response; FastAPI's own 422 (which the server never sends) replaced by ours."""
    spec = copy.deepcopy(spec)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What is wrong and how to fix it."},
            "request_id": {"type": "string", "description": "Only on 500: for the server log."},
        },
    }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "RAG_API_TOKEN; needed only when the server sets one.",
        }
    }
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            _complete_operation(path, method.upper(), operation)
    return spec


def _complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    """Examples, errors and security for one operation."""
    operation["security"] = [{}, {"bearer": []}]  # none, or the token when one is set
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's format; ours follows where a body can be wrong
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None and path in REQUEST_EXAMPLES:
        body["examples"] = REQUEST_EXAMPLES[path]
    ok = responses.setdefault("200", {"description": "OK"}).setdefault("content", {})
    if path == "/api/ask":
        ok.setdefault("application/json", {})["example"] = ANSWER_EXAMPLE
    elif path == "/api/ask/stream":
        ok.pop("application/json", None)
        responses["200"]["description"] = SSE_TEXT
        ok["text/event-stream"] = {"schema": {"type": "string"}, "example": SSE_EXAMPLE}
    elif path in RESPONSE_EXAMPLES:
        ok.setdefault("application/json", {})["example"] = RESPONSE_EXAMPLES[path]
    statuses = WRITE_ERRORS if method == "POST" else READ_ERRORS
    if path.startswith("/api/articles/"):
        statuses = (*statuses, 404)
    for status in statuses:
        responses[str(status)] = error_response(status, openai=path.startswith("/v1/"))


def error_response(status: int, openai: bool = False) -> dict[str, Any]:
    """The documented response for an error status: its body as the server sends it (on /v1,
    the errors of a question in OpenAI's shape, `ui.openai_api.openai_error`)."""
    texts = ERROR_EXAMPLES.get(status, {"slow": "The request did not arrive within 10 s."})
    examples: dict[str, Any] = {name: {"value": {"error": t}} for name, t in texts.items()}
    schema: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
    if openai and status in OPENAI_KINDS:
        kind, code = OPENAI_KINDS[status]
        examples = {
            name: {"value": {"error": {"message": text, "type": kind, "code": code}}}
            for name, text in texts.items()
        }
        schema = {"type": "object"}
    return {
        "description": ERROR_TEXT.get(status, "Error"),
        "content": {"application/json": {"schema": schema, "examples": examples}},
    }


OPENAI_KINDS = {
    401: ("invalid_request_error", "AuthError"),
    422: ("invalid_request_error", "QuestionError"),
    429: ("rate_limit_error", "RateLimitError"),
    503: ("server_error", "BusyError"),
}
RESPONSE_EXAMPLES: dict[str, Any] = {
    "/api/status": {"status": "ready"},
    "/api/articles": [
        {
            "id": "india-pakistan-off-ramp-after-clash.txt",
            "title": ANSWER_EXAMPLE["citations"][0]["title"],
            "date": None,
            "outlet": None,
            "author": None,
            "url": None,
            "source": "india-pakistan-off-ramp-after-clash.txt",
            "lang": "en",
            "chars": 5120,
            "chunks": 6,
            "extractor": "text",
        }
    ],
    "/v1/models": {
        "object": "list",
        "data": [{"id": "news-archive", "object": "model", "created": 0, "owned_by": "rag"}],
    },
}
REQUEST_EXAMPLES: dict[str, Any] = {
    "/api/ask": ASK_EXAMPLES,
    "/api/ask/stream": {
        **ASK_EXAMPLES,
        "drafts": {
            "summary": "Also the model's unchecked tokens",
            "value": {"question": ASK_EXAMPLES["question"]["value"]["question"], "drafts": True},
        },
    },
    "/v1/chat/completions": {
        "chat": {
            "summary": "A question, as any OpenAI client sends it",
            "value": {
                "model": "news-archive",
                "messages": [{"role": "user", "content": ANSWER_EXAMPLE["question"]}],
            },
        },
        "stream": {
            "summary": "Streamed (only checked text is sent)",
            "value": {
                "model": "news-archive",
                "stream": True,
                "messages": [{"role": "user", "content": ANSWER_EXAMPLE["question"]}],
            },
        },
    },
}
RESPONSE_EXAMPLES["/api/articles/{article_id}"] = {
    **RESPONSE_EXAMPLES["/api/articles"][0],
    "text": "India and Pakistan May Have an Off-Ramp After Their Clash\n\n…",
}
RESPONSE_EXAMPLES["/v1/chat/completions"] = completion(
    Answer.model_validate(ANSWER_EXAMPLE), "chatcmpl-3f9c0d7e5b2a4c1e8d6f0a9b", 1764763200
)
