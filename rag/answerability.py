"""Stage 9c, answerability: does an answer sentence give *what the question asks*, not only
its topic?

Cheap, explicit tests of the question's target, each a kind of near miss the small model
answers anyway:
- the question's own constraints (its years, numbers and names) must be in the cited article:
  asked about 2003, a 2004 figure does not answer;
- a "how many / how much" question needs a figure the question does not already hold, a
  "when" question a time;
- an estimate, plan, bid or forecast does not answer a question about what happened ("What did
  the house sell for?" is not answered by "it could fetch up to £2m"). A question about what
  someone said, announced, promised or decided asks for that statement, and its "would" or
  "plans" is the answer ("What did Khan announce?" -- "that the pilot would be released").
"""

from __future__ import annotations

import re

from rag.claims import missing_facts
from rag.numbers import numbers

_NUMERIC = re.compile(
    r"^\s*(?:how\s+(?:many|much|long|far|old|big|large|high|fast|often)|what\s+(?:percentage|"
    r"proportion|share|fraction|number|amount|sum|figure|price|cost|value|rate|total|score)|"
    r"by\s+how\s+much)\b",
    re.IGNORECASE,
)
_TEMPORAL = re.compile(
    r"^\s*(?:when|what\s+(?:year|date|day|month|time)|(?:in|on|by|since)\s+what\s+"
    r"(?:year|date|day|month))\b",
    re.IGNORECASE,
)
_TIME_WORDS = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|"
    r"december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|yesterday|today|tomorrow|tonight|week|weekend|month|"
    r"year|decade|century|spring|summer|autumn|winter|christmas|easter|morning|evening|"
    r"night|ago|earlier|later|since|until|season|quarter|fifties|sixties|seventies|eighties|"
    r"nineties|noughties)\b|\b(?:1[5-9]|20)\d\d\b|\b(?:1[5-9]|20)?\d0'?s\b|'\d0s\b|\d{1,2}:\d\d",
    re.IGNORECASE,
)
# Words that make a statement an estimate, plan, bid or forecast rather than what happened.
ESTIMATE = re.compile(
    r"\b(?:could|(?-i:may)|might|would|expected|expects|expect|forecasts?|forecast|predicts?|"
    r"predicted|estimates?|estimated|plans?|planned|planning|aims?|hopes?|hoping|target(?:s|ed)?|"
    r"bids?|offer(?:s|ed)?|proposals?|proposed|proposes|intends?|likely|set\s+to|going\s+to|"
    r"up\s+to|as\s+much\s+as|asking\s+price|valued\s+at|could\s+fetch|wants?\s+to|"
    r"threaten(?:s|ed)?|potential(?:ly)?|projected|anticipated|due\s+to|scheduled|slated|"
    r"set\s+for)\b",
    re.IGNORECASE,
)

# Amounts without a number: "dozens died", "prices doubled", "no one was hurt".
_AMOUNT_WORDS = re.compile(
    r"\b(?:dozens|scores|hundreds|thousands|millions|billions|doubled|doubling|tripled|trebled|"
    r"quadrupled|halved|halving|several|a\s+few|a\s+handful|most|majority|minority|none|"
    r"no\s+one|nobody|twice|thrice)\b",
    re.IGNORECASE,
)
# Questions about what someone said, announced or decided: the statement itself is asked for.
_REPORTED = re.compile(
    r"\b(?:announc(?:e|es|ed|ing)|says?|said|saying|tell|tells|told|promis(?:e|es|ed)|"
    r"pledg(?:e|es|ed)|vow(?:s|ed)?|warn(?:s|ed)?|claim(?:s|ed)?|suggest(?:s|ed)?|"
    r"urg(?:e|es|ed)|call(?:s|ed)?\s+for|argu(?:e|es|ed)|insist(?:s|ed)?|decid(?:e|es|ed)|"
    r"agree(?:s|d)?|confirm(?:s|ed)?|reveal(?:s|ed)?|stat(?:e|es|ed)|declar(?:e|es|ed)|"
    r"unveil(?:s|ed)?|commit(?:s|ted)?|respon(?:d|ds|ded)|react(?:s|ed)?|repl(?:y|ies|ied)|"
    r"find|finds|found|show(?:s|ed|n)?|conclud(?:e|es|ed)|report(?:s|ed)?|recommend(?:s|ed)?)\b",
    re.IGNORECASE,
)


def asks_figure(question: str) -> bool:
    """True for "how many / how much / what percentage ..." questions."""
    return bool(_NUMERIC.match(question))


def asks_time(question: str) -> bool:
    """True for "when / what year / on what date ..." questions."""
    return bool(_TEMPORAL.match(question))


def has_time(sentence: str, question: str = "") -> bool:
    """True when the sentence names a time the question does not already hold."""
    return bool(_TIME_WORDS.search(_minus(sentence, question)))


def question_constraints(question: str, article_text: str) -> list[str]:
    """The question's years, numbers and names that its cited article does not contain (its
    first word is capitalised as the start of the question, not as a name)."""
    first = re.match(r"\W*[\w'’]+", question)
    if first and not first.group().strip()[:1].isdigit():
        question = question[first.end() :]
    return missing_facts(question, article_text)


def answers(question: str, sentence: str, passages: str, article_text: str) -> str | None:
    """None when `sentence` (citing `passages`, from an article with `article_text`) gives what
    `question` asks; else the reason it does not."""
    missing = question_constraints(question, f"{article_text} {passages}")
    if missing:
        return "the cited article is not about " + ", ".join(missing)
    new_numbers = [n for n in numbers(sentence) if n.text.lower() not in question.lower()]
    if asks_figure(question) and not new_numbers and not _AMOUNT_WORDS.search(sentence):
        return "the question asks for a figure and the sentence gives none"
    if asks_time(question) and not has_time(sentence, question):
        return "the question asks when and the sentence gives no time"
    asks_intent = ESTIMATE.search(question) or _REPORTED.search(question)
    if not asks_intent and _estimate_given(sentence, passages):
        return "it gives an estimate, plan or offer where the question asks what happened"
    return None


def _minus(sentence: str, question: str) -> str:
    """The sentence without the words the question already has."""
    asked = {w.lower() for w in re.findall(r"\w+", question)}
    return " ".join(w for w in re.findall(r"[\w:]+", sentence) if w.lower() not in asked)


def _estimate_given(sentence: str, passages: str) -> bool:
    """True when the sentence's figures or times sit, in the passage, in an estimate or a plan
    (or the sentence itself says so)."""
    if ESTIMATE.search(sentence):
        return True
    # The sentence's figures and times ("by the summer"), where the passage gives them.
    given = [n.text for n in numbers(sentence)] + _TIME_WORDS.findall(sentence)
    for text in dict.fromkeys(given):
        clauses = [
            _clause_around(passages, m.start(), m.end())
            for m in re.finditer(rf"(?<!\w){re.escape(text)}(?!\w)", passages)
        ]
        if clauses and all(ESTIMATE.search(c) for c in clauses):
            return True  # the passage gives it only as an estimate or a plan
    return False


def _clause_around(text: str, start: int, end: int) -> str:
    """The clause holding text[start:end]: back to the last comma or stop (at most 60
    characters), on to the next one (at most 15)."""
    before = text[max(0, start - 60) : start]
    before = re.split(r"[,;:.!?()\-–—]\s", before)[-1]
    after = re.split(r"[,;:.!?()]", text[end : end + 15])[0]
    return before + text[start:end] + after
