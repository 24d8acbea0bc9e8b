"""Numbers as values, whatever their form: "65", "sixty-five", "£15.4m", "15.4 million pounds",
"Two million", "70%", "seventy per cent", "a quarter", "sixth".

The claim check compares values, not spellings, so a correct answer that writes a number
another way than its passage is not dropped (and a wrong one is not kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "twentieth": 20,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12,
           "k": 1e3, "m": 1e6, "bn": 1e9, "tn": 1e12}  # fmt: skip
_FRACTIONS = {"half": 50, "quarter": 25, "third": 100 / 3, "two-thirds": 200 / 3,
              "three-quarters": 75, "fifth": 20, "tenth": 10}  # fmt: skip
_WORD = "|".join(sorted([*_UNITS, *_TENS, *_ORDINALS], key=len, reverse=True))
NUMBER = re.compile(
    r"(?P<fraction>\b(?:a|one|two|three)[- ](?:half|quarter|third|fifth|tenth)s?\b|"
    r"\b(?:half|two-thirds|three-quarters)\b(?=\s+(?:of|the|a|an)\b))"
    r"|(?P<digits>(?<![\w.])\d[\d,]*(?:\.\d+)?)(?:\s?(?P<dscale>bn|tn|m|k)\b)?"
    rf"|(?P<words>\b(?:{_WORD})(?:[- ](?:{_WORD}))?\b)"
    r"(?:\s+(?P<wscale>hundred|thousand|million|billion|trillion)\b)?",
    re.IGNORECASE,
)
_SCALE_AFTER = re.compile(r"\s*(hundred|thousand|million|billion|trillion)\b", re.IGNORECASE)
_WEEKS = re.compile(r"\s*weeks?\b", re.IGNORECASE)


@dataclass(frozen=True)
class Number:
    """One number in a text: its words and the values it may stand for."""

    text: str
    start: int
    values: frozenset[float]


def _word_value(words: str) -> float | None:
    parts = re.split(r"[- ]", words.lower())
    total = 0.0
    for part in parts:
        value = _UNITS.get(part, _TENS.get(part, _ORDINALS.get(part)))
        if value is None:
            return None
        total += value
    return total


def _values(base: float, scale: float | None) -> set[float]:
    """The value, and with a scale also its mantissa ("£15.4m" may be written "15.4")."""
    return {round(base * scale, 6), round(base, 6)} if scale else {round(base, 6)}


def _fraction(text: str) -> set[float]:
    key = text.lower().replace(" ", "-").removeprefix("a-").removeprefix("one-").rstrip("s")
    value = _FRACTIONS.get(key)
    return {round(value, 1), round(value)} if value is not None else set()


def numbers(text: str) -> list[Number]:
    """Every number in `text`, in order, with the values it may stand for."""
    found = []
    for m in NUMBER.finditer(text):
        if m.group("fraction"):
            values = _fraction(m.group("fraction"))
        elif m.group("digits"):
            base = float(m.group("digits").replace(",", ""))
            scale_word = m.group("dscale") or _scale_after(text, m.end())
            values = _values(base, _SCALES.get(scale_word.lower()) if scale_word else None)
        else:
            word = _word_value(m.group("words"))
            if word is None:
                continue
            scale = m.group("wscale")
            values = _values(word, _SCALES[scale.lower()] if scale else None)
        if _WEEKS.match(text, m.end()):
            values |= {round(v * 7, 6) for v in values}  # "three weeks" is 21 days
        found.append(Number(m.group(), m.start(), frozenset(values)))
    return found


def _scale_after(text: str, end: int) -> str | None:
    m = _SCALE_AFTER.match(text, end)
    return m.group(1) if m else None


def values_in(text: str) -> set[float]:
    """All values the numbers of `text` may stand for."""
    out: set[float] = set()
    for number in numbers(text):
        out |= number.values
    return out


def unmatched(claim: str, passage: str, question: str = "") -> list[str]:
    """The numbers of `claim` whose value is neither in `passage` nor in the question
    ("one" and ordinals like "first" only when they are not part of a larger figure)."""
    known = values_in(passage) | values_in(question)
    missing = []
    for number in numbers(claim):
        if number.text.lower() in ("one", "first", "a half") and not number.values - {1.0}:
            continue  # "one of the ...", "for the first time": not figures
        if not number.values & known:
            missing.append(number.text)
    return missing
