"""Ingest the corpus: `python ingest.py` is the same as `rag ingest` (options pass through)."""

import sys

from rag.cli import main

if __name__ == "__main__":
    main(["ingest", *sys.argv[1:]])
