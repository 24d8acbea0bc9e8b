"""The `rag` command: ingest the corpus, ask questions, serve the chat page."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.chain import QA
    from rag.questions import Filters
    from rag.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _offline_env() -> None:
    from rag.settings import OFFLINE_ENV

    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def _settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from rag.errors import SettingsError
    from rag.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"RAG_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise SettingsError(
            f"Invalid setting ({problems}). Fix the environment variable or the .env file."
        ) from exc


def _utf8_stdout() -> bool:
    return (sys.stdout.encoding or "").lower().replace("-", "").replace("_", "") == "utf8"


def _fail(message: str, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def ingest(
    corpus: Annotated[
        Path | None, typer.Option(help="Folder of articles [default: corpus].")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="Index folder [default: data/chroma].")] = None,
    rebuild: Annotated[
        bool, typer.Option(help="Drop the index and ingest everything again.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Index new and changed articles, drop deleted ones; unchanged ones are skipped."""
    from rag.pipeline import run_ingest

    try:
        report = run_ingest(
            _settings(corpus_dir=corpus, store_dir=store), rebuild=rebuild, progress=not quiet
        )
    except RagError as exc:
        _fail(str(exc))
    typer.echo(report.summary())
    if report.indexed == 0:
        _fail(
            f"Nothing could be ingested: all {len(report.skipped)} files were skipped (reasons "
            "above). Fix or replace them and run `rag ingest` again."
        )


@app.command()
def articles(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
    store: Annotated[Path | None, typer.Option(help="Index folder [default: data/chroma].")] = None,
) -> None:
    """List every indexed article: title, date (or undated), outlet, URL, characters kept, and
    the extractor that produced its text."""
    from rag.articles import format_table, list_articles
    from rag.pipeline import open_records

    try:
        listing = list_articles(open_records(_settings(store_dir=store)))
    except RagError as exc:
        _fail(str(exc), as_json)
    if as_json:
        print(json.dumps(listing, ensure_ascii=not _utf8_stdout()))
    else:
        typer.echo(format_table(listing))


@app.command()
def fetch(
    urls: Annotated[list[str] | None, typer.Argument(help="Page URLs.")] = None,
    feed: Annotated[list[str] | None, typer.Option(help="An RSS or Atom feed. Repeatable.")] = None,
    sitemap: Annotated[
        list[str] | None, typer.Option(help="A sitemap or sitemap index. Repeatable.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Pages to download [default: 200].")] = None,
    corpus: Annotated[
        Path | None, typer.Option(help="Folder of articles [default: corpus].")
    ] = None,
    ingest_after: Annotated[
        bool, typer.Option("--ingest/--no-ingest", help="Ingest the corpus afterwards.")
    ] = True,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Download pages into corpus/web/<host>/ (then ingest): pages by URL, a feed's entries,
    a sitemap's pages. Only new or changed pages are downloaded again."""
    from rag.fetch import run_fetch
    from rag.pipeline import run_ingest

    if not (urls or feed or sitemap):
        _fail("Give page URLs, --feed URL or --sitemap URL.")
    try:
        settings = _settings(corpus_dir=corpus)
        report = run_fetch(
            settings, urls or [], feed or [], sitemap or [], limit=limit, show_progress=not quiet
        )
        typer.echo(report.summary())
        if not (report.fetched or report.unchanged):
            _fail("Nothing was fetched (reasons above).")
        if ingest_after:
            typer.echo(run_ingest(settings, progress=not quiet).summary())
    except RagError as exc:
        _fail(str(exc))


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="Omit it to ask interactively.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    store: Annotated[Path | None, typer.Option(help="Index folder [default: data/chroma].")] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="Only articles dated on or after YYYY-MM-DD.")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Only articles dated on or before YYYY-MM-DD.")
    ] = None,
    outlet: Annotated[
        list[str] | None, typer.Option(help="Only articles of this outlet. Repeatable.")
    ] = None,
    folder: Annotated[
        list[str] | None,
        typer.Option(help="Only articles in this folder (and its sub-folders). Repeatable."),
    ] = None,
) -> None:
    """Answer a question from the indexed articles, with numbered citations."""
    from rag.citations import format_answer
    from rag.pipeline import build_qa
    from rag.questions import Filters, Query

    as_given = {"date_from": date_from, "date_to": date_to, "outlet": outlet, "folder": folder}
    try:
        settings = _settings(store_dir=store)
        # A bad question or filter fails before the models load.
        filters = Filters.parse({k: v for k, v in as_given.items() if v})
        query = (
            None
            if question is None
            else Query.parse(question, None, settings.max_question_chars, filters)
        )
        qa = build_qa(settings)
        if query is not None:
            answer = qa.ask(query)
            print(
                json.dumps(answer.to_json_dict(), ensure_ascii=not _utf8_stdout())
                if as_json
                else format_answer(answer)
            )
            return
    except RagError as exc:
        _fail(str(exc), as_json)
    except Exception as exc:
        if not as_json:
            raise
        _fail(f"Unexpected error ({type(exc).__name__}: {exc}). Please report it.", as_json)
    _interactive(qa, filters)


def _interactive(qa: QA, filters: Filters) -> None:
    from rag.chain import warm_quietly

    typer.echo("Ask about the articles (an empty line or Ctrl-D quits; 'new' starts over).")
    # The model reads the prompt's fixed part while the first question is typed; quitting waits
    # for it (seconds), so the model is never freed under a running llama.cpp call.
    warming = threading.Thread(target=warm_quietly, args=(qa,), name="rag-warm", daemon=True)
    warming.start()
    try:
        _chat_loop(qa, filters)
    finally:
        warming.join()


def _chat_loop(qa: QA, filters: Filters) -> None:
    from rag.citations import format_answer
    from rag.questions import Query
    from rag.schema import Answer, Sentence

    history: list[tuple[str, str]] = []
    while True:
        try:
            question = input("\n? ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo("")
            return
        if not question:
            return
        if question.lower() == "new":
            history = []
            continue
        try:
            query = Query.parse(question, history, qa.max_question_chars, filters)
            for event in qa.stream(query):
                if isinstance(event, Sentence):  # shown once it has passed the check
                    typer.echo(event.text + " ", nl=False)
                elif isinstance(event, Answer):
                    typer.echo("\n\n" + format_answer(event))
                    history.append((question, event.answer))
        except RagError as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 7860].")] = None,
) -> None:
    """Serve the chat page (/), the embeddable widget (/widget) and the REST API (/api, /docs)."""
    from ui.server import serve as run_server  # the CLI is the composition root

    try:
        run_server(_settings(host=host, port=port))
    except RagError as exc:
        _fail(str(exc))


@app.command()
def mcp() -> None:
    """Serve the archive's tools (search_articles, ask) over MCP on stdio, for agent clients."""
    from ui.mcp_server import run_stdio  # the CLI is the composition root

    try:
        run_stdio(_settings())
    except RagError as exc:
        _fail(str(exc))


def _mount(spec: str) -> tuple[Path, str]:
    folder, _, prefix = spec.partition(":")
    return Path(folder), prefix


@app.command(name="eval")
def evaluate(
    questions: Annotated[Path, typer.Argument(help="JSONL question file.")] = Path(
        "eval/dev.jsonl"
    ),
    corpus: Annotated[
        list[str] | None,
        typer.Option(help="Corpus folder, or FOLDER:PREFIX to mount it under PREFIX. Repeatable."),
    ] = None,
    store: Annotated[Path, typer.Option(help="Index for the evaluation.")] = Path(
        "data/eval/chroma"
    ),
    out: Annotated[Path, typer.Option(help="Where to write the JSON results.")] = Path(
        "data/eval/results.json"
    ),
    only: Annotated[str | None, typer.Option(help="Comma-separated id prefixes to run.")] = None,
    min_hit: Annotated[float, typer.Option(help="Fail below this hit@5.")] = 0.0,
    min_cited: Annotated[
        float, typer.Option(help="Fail below this expected-article-cited rate.")
    ] = 0.0,
    min_facts: Annotated[float, typer.Option(help="Fail below this key-facts rate.")] = 0.0,
    min_refusal: Annotated[float, typer.Option(help="Fail below this refusal accuracy.")] = 0.0,
    retrieval_only: Annotated[
        bool, typer.Option(help="Measure retrieval alone (no LLM): hit@5, MRR, facts in evidence.")
    ] = False,
) -> None:
    """Run a question file through the real pipeline and print retrieval and answer metrics."""
    from rag import evaluation
    from rag.pipeline import build_qa, build_retriever, run_ingest

    try:
        cases = evaluation.load_cases(questions)
        if only:
            prefixes = tuple(p.strip() for p in only.split(","))
            cases = [c for c in cases if c.id.startswith(prefixes)]
        base = _settings(store_dir=store)
        mounts = [_mount(spec) for spec in (corpus or [str(base.corpus_dir)])]
        composed = evaluation.compose_corpus(mounts, store.parent / "corpus")
        settings = base.model_copy(update={"corpus_dir": composed})
        typer.echo(run_ingest(settings).summary(), err=True)
        if retrieval_only:
            metrics = evaluation.run_retrieval(build_retriever(settings), cases)
            evaluation.write_results(out, metrics, [])
            typer.echo(evaluation.report(metrics, []))
            return
        results = evaluation.run_cases(build_qa(settings), cases)
    except RagError as exc:
        _fail(str(exc))
    metrics = evaluation.summarise(cases, results)
    evaluation.write_results(out, metrics, results)
    typer.echo(evaluation.report(metrics, results))
    typer.echo(f"\nResults written to {out}")
    floors = {
        "hit@5": min_hit,
        "expected_article_cited": min_cited,
        "key_facts_present": min_facts,
        "refusal_accuracy": min_refusal,
    }
    if failed := evaluation.below_floors(metrics, floors):
        _fail("quality below the thresholds: " + "; ".join(failed))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _offline_env()
    for stream in (sys.stdout, sys.stderr):  # a file name or answer the terminal cannot show
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    app(args=argv if argv is not None else sys.argv[1:], prog_name="rag")


if __name__ == "__main__":
    main()
