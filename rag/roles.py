"""Stage 9a, roles: the right names in the wrong roles.

"Peter Hale replaced Sarah Lund", citing "Sarah Lund replaced Peter Hale", holds every name and
number of its passage, so the names test passes it. This test takes two names of the claim with
a verb between them and finds a passage sentence that holds both names with the same verb
between them; if every such sentence runs the other way ("B <verb> A", or "A was <verb> by B"
for the claim's "A <verb> B"), the names are in swapped roles. Verbs whose direction does not
matter ("met", "drew with") are left alone; a claim the passage does not phrase with the same
verb gets no verdict here (the later checks see it).
"""

from __future__ import annotations

import re

from rag.chunking import split_sentences
from rag.claims import key_facts

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_BE = {"is", "are", "was", "were", "be", "been", "being", "get", "got", "gets", "has", "had"}
# Verbs whose subject and object may trade places without changing what is said.
SYMMETRIC = set(
    "met meet meets meeting married marry marries drew draw draws tied tie ties played play "
    "plays playing merged merge merges talked talk talks spoke speak speaks clashed clash "
    "fought fight faced face faces joined join partnered partner versus vs against and or "
    "with between".split()
)
_LINKS = set("the a an of to in on at for by with from and or but as his her their its".split())
MAX_GAP = 6  # words between the two names


def _stem(word: str) -> str:
    word = word.lower().replace("’", "'").removesuffix("'s")
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _tokens(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text)]


def _relations(tokens: list[str], names: set[str]) -> dict[tuple[str, str, str], bool]:
    """(first name, second name, verb) -> True when the first name does the verb's action."""
    found: dict[tuple[str, str, str], bool] = {}
    spots = [i for i, t in enumerate(tokens) if t in names]
    for x, i in enumerate(spots):
        for j in spots[x + 1 :]:
            if j - i - 1 > MAX_GAP or tokens[i] == tokens[j]:
                continue
            gap = tokens[i + 1 : j]
            if any(t in SYMMETRIC for t in gap):
                continue
            verbs = [(k, t) for k, t in enumerate(gap) if t not in names | _LINKS | _BE]
            if verbs:  # the first content word after the first name
                k, verb = verbs[0]
                passive = (k > 0 and gap[k - 1] in _BE) and "by" in gap[k + 1 :]
                found[(tokens[i], tokens[j], verb)] = not passive
    return found


def swapped_roles(claim: str, passage: str) -> list[str]:
    """The claim's name pairs that the passage puts in the other roles (empty: none seen)."""
    names = {_stem(f) for f in key_facts(claim) if not f[:1].isdigit()}
    if len(names) < 2:
        return []
    claimed = _relations(_tokens(claim), names)
    seen: dict[tuple[str, str, str], set[bool]] = {}
    for start, end in split_sentences(passage):
        for (a, b, verb), forward in _relations(_tokens(passage[start:end]), names).items():
            seen.setdefault((a, b, verb), set()).add(forward)
            seen.setdefault((b, a, verb), set()).add(not forward)
    return [
        f"{a} {verb} {b}"
        for (a, b, verb), forward in claimed.items()
        if (a, b, verb) in seen and forward not in seen[(a, b, verb)]
    ]
