"""The bundled corpus: file size, record format, fixed disjoint splits, argument checking."""

import json
import lzma

import pytest

from switch_sae_mini import corpus
from switch_sae_mini.data.corpus import DOMAINS, Document, corpus_stats, load_corpus


@pytest.fixture(scope="module")
def records():
    with lzma.open(corpus.CORPUS_PATH, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_file_is_at_most_8_mb():
    assert corpus.CORPUS_PATH.stat().st_size <= 8 * 1024 * 1024


def test_records_are_well_formed(records):
    assert len(records) > 500
    for i, record in enumerate(records):
        assert list(record) == ["doc_id", "domain", "title", "split", "text"]
        assert record["doc_id"] == i  # stable ids: file order
        assert record["domain"] in DOMAINS
        assert record["split"] in ("train", "validation")
        assert isinstance(record["title"], str) and record["title"]
        assert isinstance(record["text"], str) and record["text"].strip() == record["text"]
        assert 0 < len(record["text"]) <= 20_000
    titles = [(r["domain"], r["title"]) for r in records]
    assert len(set(titles)) == len(titles)


def test_splits_are_disjoint_and_cover_the_file(records):
    train, val = load_corpus("train"), load_corpus("validation")
    train_ids, val_ids = {d.doc_id for d in train}, {d.doc_id for d in val}
    assert not train_ids & val_ids
    assert train_ids | val_ids == set(range(len(records)))
    # Parts of one work never straddle the split, so validation text is unseen in training.
    work = lambda doc: (doc.domain, doc.title.split(" [part ")[0])
    assert not {work(d) for d in train} & {work(d) for d in val}


def test_split_is_fixed():
    # Pinned by the build (hash of the work title): changing it would silently change every validation number.
    val_titles = {d.title.split(" [part ")[0] for d in load_corpus("validation", "bible")}
    assert val_titles == {"2 Peter", "Daniel", "Ephesians", "Luke"}
    plays = {d.title.split(" [part ")[0] for d in load_corpus("validation", "shakespeare")}
    assert plays == {"King Henry IV, the First Part", "Romeo and Juliet", "The Phoenix and the Turtle"}


def test_every_domain_in_both_splits_with_about_5_percent_validation():
    stats = corpus_stats()
    for domain in DOMAINS:
        train, val = stats["train"][domain], stats["validation"][domain]
        assert train["documents"] > 0 and val["documents"] >= 3
        assert 0.04 < val["characters"] / (train["characters"] + val["characters"]) < 0.10


def test_domain_filter_and_documents():
    docs = load_corpus("train", domains=["bible", "shakespeare"])
    assert {d.domain for d in docs} == {"bible", "shakespeare"}
    assert all(isinstance(d, Document) for d in docs)
    assert [d.doc_id for d in docs] == sorted(d.doc_id for d in docs)
    assert load_corpus("train", "bible") == load_corpus("train", ["bible"])
    assert docs[0].text.startswith("ALL'S WELL THAT ENDS WELL")
    genesis = next(d for d in docs if d.title.startswith("Genesis"))
    assert "In the beginning God created the heaven and the earth." in genesis.text
    assert any(".. function::" in d.text for d in load_corpus("train", "python_docs"))


def test_load_returns_a_fresh_list():
    docs = load_corpus("validation")
    docs.clear()
    assert load_corpus("validation")


@pytest.mark.parametrize("split", ["test", "val", "", None])
def test_bad_split_raises(split):
    with pytest.raises(ValueError, match="split"):
        load_corpus(split)


@pytest.mark.parametrize("domains", [["poetry"], "python", [], ["bible", "code"]])
def test_bad_domains_raise(domains):
    with pytest.raises(ValueError, match="domains"):
        load_corpus("train", domains=domains)
