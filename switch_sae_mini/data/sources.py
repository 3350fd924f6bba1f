"""Text sources for activation harvesting: the bundled corpus, local text files, or a streamed HF dataset.

``make_source`` turns the ``source=`` argument of ``ActivationBuffer`` / ``harvest_to_disk`` / ``EvalTokens`` into an
object with ``.name``, ``.domains`` and ``.documents(seed, epoch)``:

- ``"bundled"`` (default): ``switch_sae_mini.data.corpus`` (Shakespeare, Python docs, KJV Bible), one split;
- a path to a ``.txt``/``.md``/``.rst`` file or a folder of them: one document per file, domain = file stem (or
  ``label``);
- ``"hf:<dataset>"``, e.g. ``"hf:Skylion007/openwebtext"`` as in the paper (docs/design-notes.md §4):
  ``datasets`` streaming, field ``text``, in stream order; needs the hub;
- a list of ``Document`` or of plain strings (handy in tests and notebooks).

Finite sources are shuffled per epoch with a seed, so the buffer sees the domains mixed; a stream keeps its order.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..errors import SwitchSAEError
from .corpus import DOMAINS, Document, load_corpus
from .models import hub_is_offline, hub_reachable

TEXT_SUFFIXES = (".txt", ".md", ".rst")
HF_PREFIX = "hf:"


class SourceError(SwitchSAEError, ValueError):
    """A text source is unknown, empty or unavailable; the message says how to fix it."""


class DocumentList:
    """A finite list of documents, reshuffled every epoch (``seed=None`` keeps the given order)."""

    def __init__(self, docs: Sequence[Document], name: str, domains: Sequence[str] | None = None):
        self.docs = list(docs)
        self.name = name
        if not any(doc.text.strip() for doc in self.docs):
            raise SourceError(f"source {name!r} has no text: {len(self.docs)} document(s), all empty. "
                              "Point it at non-empty text files or pick other domains.")
        seen = dict.fromkeys(doc.domain for doc in self.docs)
        self.domains = tuple(domains) if domains is not None else tuple(sorted(seen))
        missing = [d for d in seen if d not in self.domains]
        if missing:
            raise SourceError(f"source {name!r}: documents have domains {missing} not listed in domains={self.domains}")

    def documents(self, seed: int | None = 0, epoch: int = 0) -> Iterator[Document]:
        order = list(range(len(self.docs)))
        if seed is not None:
            random.Random(f"{seed}:{epoch}").shuffle(order)
        return (self.docs[i] for i in order)

    def __len__(self) -> int:
        return len(self.docs)


class HFStreamingSource:
    """A Hugging Face dataset read with ``streaming=True`` (OpenWebText in the paper). Order is the stream order."""

    def __init__(self, dataset: str, split: str = "train", text_field: str = "text"):
        self.dataset, self.split, self.text_field = dataset, split, text_field
        self.name = f"{HF_PREFIX}{dataset}"
        self.domains = (dataset,)

    def documents(self, seed: int | None = 0, epoch: int = 0) -> Iterator[Document]:
        try:
            import datasets
        except ImportError as err:
            raise SourceError(f"source {self.name!r} needs the `datasets` package: pip install datasets") from err
        if not hub_is_offline() and not hub_reachable():  # fail in seconds instead of ~25 s of retries
            raise SourceError(f"source {self.name!r} needs the Hugging Face hub, which is unreachable from this "
                              "machine; offline, use source='bundled' or a local text folder.")
        try:
            stream = datasets.load_dataset(self.dataset, split=self.split, streaming=True)
            first = list(itertools.islice(iter(stream), 1))
        except Exception as err:  # offline, unknown dataset, unknown split ...
            raise SourceError(
                f"source {self.name!r} needs the Hugging Face hub but could not be streamed ({type(err).__name__}: "
                f"{str(err)[:200]}). Offline, use source='bundled' or a local text folder."
            ) from err
        if not first:
            raise SourceError(f"source {self.name!r} split {self.split!r} is empty.")
        if self.text_field not in first[0]:
            raise SourceError(f"source {self.name!r} has no field {self.text_field!r}; fields: {sorted(first[0])}. "
                              "Pass text_field= with the right one.")
        for doc_id, record in enumerate(stream):
            yield Document(doc_id, self.dataset, str(record.get("id", doc_id)), record[self.text_field])


def local_documents(path: str | Path, label: str | None = None) -> list[Document]:
    """One ``Document`` per ``*.txt``/``*.md``/``*.rst`` file under ``path`` (a file or folder), sorted by path.

    ``domain`` is ``label`` if given, else the file stem; ``doc_id`` is the index in sorted order; ``title`` the
    path relative to ``path``.
    """
    root = Path(path).expanduser()
    if root.is_file():
        files = [root]
        root = root.parent
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    else:
        raise SourceError(f"source path {str(path)!r} does not exist.")
    if not files:
        raise SourceError(f"source folder {str(path)!r} has no {'/'.join('*' + s for s in TEXT_SUFFIXES)} files.")
    return [Document(i, label or file.stem, str(file.relative_to(root)), file.read_text(encoding="utf-8",
                                                                                          errors="replace"))
            for i, file in enumerate(files)]


def make_source(source: object = "bundled", split: str = "train", domains: Iterable[str] | str | None = None,
                label: str | None = None):
    """Build a text source from the ``source=`` argument (see the module docstring for the accepted forms).

    Args:
        source: "bundled", a path, "hf:<dataset>", a list of Documents/strings, or an existing source object.
        split: corpus split ("train"/"validation") for the bundled corpus; dataset split for "hf:" sources.
        domains: bundled corpus only: restrict to these domains (default all of ``corpus.DOMAINS``).
        label: local files only: domain name for every file (default: the file stem).
    """
    if hasattr(source, "documents") and hasattr(source, "domains"):
        return source
    if isinstance(source, (list, tuple)):
        docs = [doc if isinstance(doc, Document) else Document(i, label or "text", f"text {i}", str(doc))
                for i, doc in enumerate(source)]
        if not docs:
            raise SourceError("source is an empty list; pass at least one non-empty document.")
        return DocumentList(docs, name=f"list[{len(docs)}]")
    if not isinstance(source, (str, Path)):
        raise SourceError(f"source must be 'bundled', a path, 'hf:<dataset>' or a list of texts; got "
                          f"{type(source).__name__}.")
    if source == "bundled":
        docs = load_corpus(split, domains)
        kept = [d for d in DOMAINS if any(doc.domain == d for doc in docs)]
        return DocumentList(docs, name=f"bundled:{split}", domains=kept)
    if isinstance(source, str) and source.startswith(HF_PREFIX):
        return HFStreamingSource(source[len(HF_PREFIX):], split=split)
    if Path(source).expanduser().exists():
        return DocumentList(local_documents(source, label), name=str(Path(source).expanduser().resolve()))
    raise SourceError(f"source {str(source)!r} is neither 'bundled', an existing file/folder, nor 'hf:<dataset>' "
                      "(e.g. 'hf:Skylion007/openwebtext').")
