"""The small bundled text corpus: Shakespeare, the Python 3.11 docs and the King James Bible.

The corpus ships as ``assets/corpus/corpus.jsonl.xz``, one JSON record per line; ``assets/corpus/NOTICE.md``
gives the sources, licences and how ``scripts/build_corpus.py`` rebuilds it. Each record is one document of
at most ~20k characters: a play, reST page or Bible book, or a part of one. The train/validation split is
fixed in the file and made per *work*, so all parts of a play or page share a split and validation text is
never seen in training.

Example::

    from switch_sae_mini.data.corpus import load_corpus
    docs = load_corpus("train", domains=["bible"])
    print(len(docs), docs[0].title, docs[0].text[:80])
"""

from __future__ import annotations

import json
import lzma
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from ..errors import ArgumentError, MissingFileError

DOMAINS = ("shakespeare", "python_docs", "bible")
SPLITS = ("train", "validation")
CORPUS_PATH = Path(__file__).resolve().parents[1] / "assets" / "corpus" / "corpus.jsonl.xz"


class Document(NamedTuple):
    """One corpus document. ``doc_id`` is stable across loads; ``title`` names the work (and part, if any)."""

    doc_id: int
    domain: str
    title: str
    text: str


@lru_cache(maxsize=1)
def _read_all() -> dict[str, tuple[Document, ...]]:
    """Decompress the corpus once per process and group it by split (about 1 s, ~20 MB of text)."""
    if not CORPUS_PATH.exists():
        raise MissingFileError(f"corpus file {CORPUS_PATH} is missing; "
                                "rebuild it with scripts/build_corpus.py")
    by_split: dict[str, list[Document]] = {split: [] for split in SPLITS}
    with lzma.open(CORPUS_PATH, "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            by_split[record["split"]].append(
                Document(record["doc_id"], record["domain"], record["title"], record["text"]))
    return {split: tuple(docs) for split, docs in by_split.items()}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ArgumentError(f"split must be one of {SPLITS}, got {split!r}")


def _check_domains(domains: Iterable[str] | str | None) -> tuple[str, ...]:
    if domains is None:
        return DOMAINS
    if isinstance(domains, str):  # a lone string would otherwise be iterated letter by letter
        domains = (domains,)
    domains = tuple(domains)
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown or not domains:
        raise ArgumentError(f"domains must be None or a non-empty collection of {DOMAINS}, got {domains!r}")
    return domains


def load_corpus(split: str = "train", domains: Iterable[str] | str | None = None) -> list[Document]:
    """Documents of one split, in ``doc_id`` order, optionally restricted to some domains.

    Args:
        split: "train" or "validation".
        domains: None for all of ``DOMAINS``, or a collection (or a single name) of domains to keep.

    Returns:
        A new list of ``Document``; the file is read only on the first call.

    Raises:
        ValueError: if ``split`` or ``domains`` names something that does not exist.
    """
    _check_split(split)
    wanted = set(_check_domains(domains))
    return [doc for doc in _read_all()[split] if doc.domain in wanted]


def corpus_stats() -> dict[str, dict[str, dict[str, int]]]:
    """Document and character counts: ``stats[split][domain] == {"documents": n, "characters": c}``."""
    stats: dict[str, dict[str, dict[str, int]]] = {}
    for split in SPLITS:
        stats[split] = {domain: {"documents": 0, "characters": 0} for domain in DOMAINS}
        for doc in _read_all()[split]:
            stats[split][doc.domain]["documents"] += 1
            stats[split][doc.domain]["characters"] += len(doc.text)
    return stats
