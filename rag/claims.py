"""Stage 9a, claims: the names and numbers of an answer sentence, and whether its passages hold them.

The cheap, deterministic first test of every answer sentence: a small model invents names ("the
pilot is Shashank Singh") and numbers; none of them may reach the reader unless the cited
passage (or the reader's own question) contains it.
"""

from __future__ import annotations

import re

from rag.chunking import split_sentences
from rag.numbers import unmatched
from rag.schema import Answer

MARKERS = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_TOKEN = re.compile(r"\d[\d,.]*\d|\d|[A-Za-z][A-Za-z0-9'’]*")
_WORD_NUMBERS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven "
        "twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
    "seventy": "70",
    "eighty": "80",
    "ninety": "90",
    "hundred": "100",
    "thousand": "1000",
    "million": "million",
    "billion": "billion",
}
_NUMBER_WORDS = {v: k for k, v in _WORD_NUMBERS.items()}
# Capitalised only because they start a sentence; never names.
_SENTENCE_STARTERS = set(
    "the a an this that these those it its in on at "
    "by for from to of as after before both he she they "
    "we you his her their our yes no however while when who "
    "what which where why how according there here some many most all "
    "each one two if but and or so several such recent other "
    "another only also then thus therefore because since although despite during under "
    "over with without between among through following given once still yet instead "
    "meanwhile overall together further first second finally about around nearly almost "
    "just some more less roughly approximately whom whose besides apart except excluding "
    "including did does do is are was were has have had can could should will".split()
)
# Peoples and their countries whose names share no stem ("Scot" / "Scottish", "Dane" /
# "Danish" / "Denmark"): a word of a group supports any other of it.
_NATIONS = [
    set(group.split())
    for group in (
        "scotland scottish scot scots",
        "britain british briton britons brit brits",
        "wales welsh",
        "ireland irish",
        "france french frenchman frenchwoman",
        "netherlands holland dutch",
        "spain spanish spaniard spaniards",
        "switzerland swiss",
        "denmark danish dane danes",
        "sweden swedish swede swedes",
        "finland finnish finn finns",
        "poland polish pole poles",
        "england english englishman",
        "turkey turkish turk turks",
        "portugal portuguese",
        "china chinese",
        "japan japanese",
        "lebanon lebanese",
        "greece greek greeks",
        "thailand thai thais",
        "iraq iraqi iraqis",
        "israel israeli israelis",
        "kuwait kuwaiti kuwaitis",
        "pakistan pakistani pakistanis",
        "bangladesh bangladeshi bangladeshis",
        "yemen yemeni yemenis",
        "afghanistan afghan afghans",
        "philippines filipino filipinos philippine",
        "zealand kiwi kiwis",  # "New" alone is no nation
        "argentina argentine argentinian argentinians",
        "belgium belgian belgians",
        "peru peruvian peruvians",
        "norway norwegian norwegians",
        "iceland icelandic icelander",
        "cyprus cypriot cypriots",
        "malta maltese",
        "vietnam vietnamese",
        "congo congolese",
        "senegal senegalese",
        "sudan sudanese",
    )
]
# Words that say nothing about the world: a reply made only of these and the question's own
# words ("The captured pilot is named [1].") answers nothing.
_EMPTY_WORDS = _SENTENCE_STARTERS | set(
    "is are was were be been being has have had do does "
    "did can could would should may might will not article articles evidence "
    "passage passages text mention mentions mentioned state states stated say says said "
    "named name called about".split()
)


def key_facts(sentence: str, question: str = "") -> list[str]:
    """Names (capitalised words) and numbers in a sentence.

    The first word counts unless it is a common sentence opener or echoes the question's words
    ("Hotlines could help…" for "What could hotlines…?").
    """
    asked = {w.lower() for w in _TOKEN.findall(question)}
    tokens = [m.group() for m in _TOKEN.finditer(sentence)]
    facts = []
    for i, token in enumerate(tokens):
        word = token.rstrip(".,").replace("’", "'").removesuffix("'s")
        if word[:1].isdigit():
            facts.append(word.replace(",", ""))
        elif word.lower() in _WORD_NUMBERS and word.lower() not in ("one", "zero"):
            facts.append(word.lower())
        elif (
            word[:1].isupper()
            and word not in ("I", "A")
            and (i > 0 or word.lower() not in _SENTENCE_STARTERS | asked)
        ):
            facts.append(word)
    return facts


def adds_content(sentence: str, question: str) -> bool:
    """True when the sentence says something beyond restating the question."""

    def stems(text: str) -> set[str]:
        words = re.findall(r"[a-z0-9]+", text.lower().replace("’", "'"))
        return {w[:5] for w in words if w not in _EMPTY_WORDS}

    return bool(stems(sentence) - stems(question))


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("'s", "").replace(".", "")
    return re.sub(r"[^a-z0-9']+", " ", text.replace(",", ""))


def missing_facts(sentence: str, evidence_text: str, question: str = "") -> list[str]:
    """The names and numbers of `sentence` that appear neither in `evidence_text` nor in the
    question (a name the user gave is not one the model invented). Numbers are compared by
    value ("sixty-five" is 65, "15.4 million pounds" is "£15.4m")."""
    norm = _normalise(evidence_text)
    words = set(norm.split())
    asked = set(_normalise(question).split())
    missing = unmatched(sentence, evidence_text, question)
    for fact in key_facts(sentence, question):
        key = _normalise(fact).strip()
        if not key or key in asked or key.isdigit() or re.fullmatch(r"[\d.]+", key):
            continue  # numbers: compared by value above
        if fact[:1].islower() and (key in _WORD_NUMBERS or key in _NUMBER_WORDS):
            continue
        if key in _WORD_NUMBERS:
            continue
        if any(key in group and group & words for group in _NATIONS):
            continue  # "the Scot" for "Scottish"
        # "Indian" for "India", "Pakistani" for "Pakistan": allow a shared stem.
        stem = key[: max(5, len(key) - 2)] if len(key) >= 6 else None
        if (
            key in words
            or f" {key} " in f" {norm} "
            or any(
                (stem and w.startswith(stem))
                or (len(key) >= 4 and w.startswith(key) and len(w) <= len(key) + 3)
                for w in words
            )
        ):
            continue
        missing.append(fact)
    return missing


_COUNTED = re.compile(r"(?<![\d.,])\b(\d{1,2}|[A-Za-z]+)\s+([A-Za-z]{3,})")  # not "4.2 million"


_UNITS_OF_MEASURE = set(
    "year years month months week weeks day days hour hours minute minutes second seconds "
    "per percent cent old times metres miles points goals".split()
)


def _counted_nouns(sentence: str) -> list[tuple[str, str]]:
    """(small number, the word right after it): "Two aircraft" -> ("2", "aircra").

    Only numbers under 100: a large specific figure ("155,465") does not turn up by chance,
    but "two" or "3" appear in almost any evidence.
    """
    pairs = []
    for match in _COUNTED.finditer(sentence):
        word, noun = match.group(1).lower(), match.group(2).lower()
        number = word if word.isdigit() else _WORD_NUMBERS.get(word)
        if (
            number
            and number.isdigit()
            and int(number) < 100
            and noun not in _EMPTY_WORDS
            and noun not in _UNITS_OF_MEASURE  # "27 years old" is "at the age of 27"
        ):
            pairs.append((number, noun[:6]))
    return pairs


def miscounted(sentence: str, evidence_text: str) -> list[str]:
    """Numbers that occur in the evidence, but never near the thing the sentence counts.

    "Two aircraft were shot down" passes a bare check when the evidence says "the two
    neighbours"; here "two" must stand within a few words of "aircraft".
    """
    words = _normalise(evidence_text).split()
    bad = []
    for number, noun in _counted_nouns(sentence):
        spots = [i for i, w in enumerate(words) if w == number or _WORD_NUMBERS.get(w) == number]
        if spots and not any(
            any(w.startswith(noun) for w in words[max(0, i - 4) : i + 5]) for i in spots
        ):
            bad.append(f"{number} {noun}…")
    return bad


def unsupported_facts(answer: Answer) -> list[str]:
    """Names and numbers in a final answer that its own cited passages do not contain."""
    if answer.refused:
        return []
    quotes = {c.n: c.quote for c in answer.citations}
    missing: list[str] = []
    for start, end in split_sentences(answer.answer):
        sentence = answer.answer[start:end]
        cited = " ".join(quotes.get(int(n), "") for n in re.findall(r"\[(\d+)\]", sentence))
        text = MARKERS.sub("", sentence)
        missing += missing_facts(text, cited, answer.question) + miscounted(text, cited)
    return missing
