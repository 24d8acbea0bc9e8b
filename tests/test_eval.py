"""`rag eval` as a regression test: a slice of the dev set through the real pipeline, with floors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import BBC, ROOT, child_env

pytestmark = pytest.mark.e2e

# Seed questions, all unanswerables, the BBC tech questions and two conversations. The BBC tech
# folder (401 articles) is mounted so that retrieval has real distractors.
SLICE = "seed-,un-,bbc-17,bbc-18,bbc-19,bbc-20,conv-01,conv-03"


def test_eval_slice_meets_quality_floors(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rag.cli",
            "eval",
            str(ROOT / "eval" / "dev.jsonl"),
            "--corpus",
            str(ROOT / "corpus"),
            "--corpus",
            f"{BBC / 'tech'}:bbc/tech",
            "--store",
            str(tmp_path / "chroma"),
            "--out",
            str(out),
            "--only",
            SLICE,
            "--min-hit",
            "0.9",
            "--min-cited",
            "0.85",
            "--min-facts",
            "0.75",
            "--min-refusal",
            "0.85",
        ],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = json.loads(out.read_text())
    metrics = data["metrics"]
    assert metrics["questions"] == len(data["cases"]) >= 25
    assert metrics["unsupported_names_or_numbers"] == 0
    assert {c["id"] for c in data["cases"]} >= {"seed-01", "un-01", "conv-01.2", "bbc-17"}
