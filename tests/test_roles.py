"""The roles test (rag.roles) and the deterministic check's floor on the labelled pair set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.claims import miscounted, missing_facts
from rag.roles import swapped_roles

PASSAGE = "Sarah Lund replaced Peter Hale as chief executive of the Norbridge Water company."


@pytest.mark.parametrize(
    "claim",
    [
        "Peter Hale replaced Sarah Lund at Norbridge Water.",
        "Hale replaced Lund as chief executive.",
        "Sarah Lund was replaced by Peter Hale.",
    ],
)
def test_names_in_swapped_roles_are_caught(claim):
    assert swapped_roles(claim, PASSAGE)


@pytest.mark.parametrize(
    ("claim", "passage"),
    [
        ("Sarah Lund replaced Peter Hale.", PASSAGE),
        ("Peter Hale was replaced by Sarah Lund.", PASSAGE),
        ("Lund, who replaced Hale, joined from Westline.", PASSAGE + " Lund joined from Westline."),
        ("Arsenal drew with Chelsea.", "Chelsea drew with Arsenal on Sunday."),
        ("India and Pakistan were partitioned in 1947.", "Pakistan and India were partitioned."),
        ("Peter Hale succeeded Sarah Lund.", PASSAGE),  # another verb: no verdict here
        ("Rato was asked by G7 ministers to study it.", "G7 ministers asked Rato to study it."),
    ],
)
def test_the_same_roles_pass(claim, passage):
    assert swapped_roles(claim, passage) == []


def test_the_deterministic_check_keeps_supported_pairs_and_catches_some_swaps():
    rows = [
        json.loads(line)
        for line in (Path(__file__).parent / "data/claims/pairs.jsonl").read_text().splitlines()
    ]

    def passes(r: dict[str, str]) -> bool:
        claim, passage = r["claim"], r["passage"] + " " + r.get("title", "")
        return not (
            missing_facts(claim, passage, r["question"])
            or miscounted(claim, passage)
            or swapped_roles(claim, r["passage"])
        )

    supported = [passes(r) for r in rows if r["label"] == "supported"]
    unsupported = [not passes(r) for r in rows if r["label"] != "supported"]
    swaps = [not passes(r) for r in rows if r["kind"] in ("swapped-name", "swapped-number")]
    assert sum(supported) / len(supported) >= 0.9  # measured 0.914 (494 pairs)
    assert sum(unsupported) / len(unsupported) >= 0.25  # measured 0.28
    assert sum(swaps) / len(swaps) >= 0.6
