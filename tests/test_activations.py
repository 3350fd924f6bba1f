"""sources.py, activations.py, disk_cache.py: contexts, hook reading, buffer, metadata, disk cache, errors."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from switch_sae_mini.data.activations import (
    ActivationBuffer,
    HookReader,
    UnknownHookError,
    activations_from_contexts,
    iter_context_batches,
)
from switch_sae_mini.data.corpus import DOMAINS, Document
from switch_sae_mini.data.disk_cache import CacheMismatchError, DiskActivations, harvest_to_disk
from switch_sae_mini.data.sources import SourceError, make_source
from switch_sae_mini.errors import SwitchSAEError

pytestmark = pytest.mark.usefixtures("torch_single_thread")

BOS = 50256


def _ids(model, text):
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


def _buffer(model, docs, **kwargs):
    settings = {"source": docs, "context_len": 32, "n_contexts": 8, "batch_size": 64, "model_batch_size": 4,
                "progress": False}
    settings.update(kwargs)
    return ActivationBuffer(model, **settings)


# ----------------------------------------------------------------------------- reading hooks


@pytest.mark.parametrize("hook, stop", [("blocks.0.hook_resid_post", 1), ("blocks.1.hook_resid_pre", 1),
                                        ("blocks.0.hook_resid_pre", 0), ("blocks.1.hook_resid_post", None),
                                        ("blocks.0.mlp.hook_post", None), ("blocks.1.attn.hook_z", None)])
def test_hook_reader_equals_run_with_cache(tiny_lm, hook, stop):
    tokens = torch.tensor([[BOS] + list(range(100, 115)), [BOS] + list(range(300, 315))])
    reader = HookReader(tiny_lm, hook)
    assert reader.stop_at_layer == stop
    with torch.no_grad():
        _, cache = tiny_lm.run_with_cache(tokens, names_filter=[hook])
    expected = cache[hook].reshape(2, 16, -1)
    acts = reader(tokens)
    assert acts.shape == expected.shape and acts.dtype == torch.float32
    torch.testing.assert_close(acts, expected, rtol=0, atol=0)
    assert reader.d_in == expected.shape[-1]


def test_unknown_hook_lists_close_matches(tiny_lm, sample_docs):
    with pytest.raises(UnknownHookError, match="blocks.0.hook_resid_post"):
        HookReader(tiny_lm, "blocks.0.hook_resid_pst")
    with pytest.raises(UnknownHookError, match="does not exist"):
        _buffer(tiny_lm, sample_docs, hook="blocks.7.hook_resid_post")


# ----------------------------------------------------------------------------- contexts and positions


def test_contexts_start_with_bos_cover_documents_and_pad(tiny_lm, sample_docs):
    batches = list(iter_context_batches(sample_docs, tiny_lm.tokenizer, DOMAINS, context_len=32,
                                        contexts_per_batch=5))
    tokens = torch.cat([b.tokens for b in batches])
    n_filled = torch.cat([b.n_filled for b in batches])
    doc_ids = torch.cat([b.doc_id for b in batches])
    assert tokens.shape[1] == 32 and (tokens[:, 0] == BOS).all()
    for doc in sample_docs:  # the contexts of a document, BOS removed, concatenate back to its tokens
        rows = (doc_ids == doc.doc_id).nonzero().flatten()
        rebuilt = [t for r in rows for t in tokens[r, 1:n_filled[r]].tolist()]
        assert rebuilt == _ids(tiny_lm, doc.text)
        assert (tokens[rows[-1], n_filled[rows[-1]]:] == BOS).all()  # pad (= EOS = BOS for GPT-2)
    assert (n_filled < 32).any() and (n_filled == 32).any()


@pytest.mark.parametrize("keep_bos", [False, True])
def test_bos_and_padding_positions_dropped(tiny_lm, sample_docs, keep_bos):
    reader = HookReader(tiny_lm, "blocks.0.hook_resid_post")
    batch = next(iter_context_batches(sample_docs, tiny_lm.tokenizer, DOMAINS, 32, contexts_per_batch=100))
    acts, meta = activations_from_contexts(reader, batch, keep_bos=keep_bos)
    n_text = sum(len(_ids(tiny_lm, d.text)) for d in sample_docs)
    n_ctx = len(batch.tokens)
    assert acts.shape == (n_text + keep_bos * n_ctx, 64) and meta.shape == (len(acts), 4)
    assert ((meta[:, 1] == -1).sum() == keep_bos * n_ctx)
    full = reader(batch.tokens)  # row-major order of kept positions
    mask = torch.arange(32)[None] < batch.n_filled[:, None]
    mask[:, 0] = keep_bos
    torch.testing.assert_close(acts, full[mask], rtol=0, atol=0)


def test_without_bos_first_token_is_kept(tiny_lm, sample_docs):
    batch = next(iter_context_batches(sample_docs[:1], tiny_lm.tokenizer, DOMAINS, 32, 10, prepend_bos=False))
    _acts, meta = activations_from_contexts(HookReader(tiny_lm), batch, prepend_bos=False)
    assert meta[:, 1].tolist() == list(range(len(_ids(tiny_lm, sample_docs[0].text))))


# ----------------------------------------------------------------------------- the buffer


def test_batches_shapes_dtype_and_token_budget(tiny_lm, sample_docs):
    batches = list(_buffer(tiny_lm, sample_docs).batches(n_tokens=1000))
    assert [len(b) for b in batches] == [64] * 15 + [40]
    assert all(b.shape[1] == 64 and b.dtype == torch.float32 for b in batches)


def test_same_seed_same_batches_other_seed_differs(tiny_lm, sample_docs):
    first = torch.cat(list(_buffer(tiny_lm, sample_docs, seed=3).batches(300)))
    again = torch.cat(list(_buffer(tiny_lm, sample_docs, seed=3).batches(300)))
    other = torch.cat(list(_buffer(tiny_lm, sample_docs, seed=4).batches(300)))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)
    buffer = _buffer(tiny_lm, sample_docs, seed=3)  # batches() restarts from the seed on every call
    torch.testing.assert_close(torch.cat(list(buffer.batches(300))), first, rtol=0, atol=0)


def test_metadata_matches_tokens_and_activations(tiny_lm, sample_docs):
    buffer = _buffer(tiny_lm, sample_docs, hook="blocks.0.hook_resid_post")
    docs = {d.doc_id: d for d in sample_docs}
    x, meta = next(buffer.batches(with_metadata=True))
    assert set(meta._fields) == {"doc_id", "position", "token_id", "domain"} and len(meta.doc_id) == len(x)
    step = 31  # context_len - BOS
    for row in range(0, 64, 8):
        doc = docs[int(meta.doc_id[row])]
        ids, pos = _ids(tiny_lm, doc.text), int(meta.position[row])
        assert ids[pos] == meta.token_id[row]
        assert buffer.domains[meta.domain[row]] == doc.domain
        start = pos // step * step  # recompute this activation from its own context
        context = torch.tensor([[BOS] + ids[start:start + step]])
        torch.testing.assert_close(x[row], buffer.reader(context)[0, pos - start + 1], rtol=0, atol=0)


def test_pool_is_shuffled_across_contexts_and_refilled_without_repeats(tiny_lm, sample_docs):
    n_text = sum(len(_ids(tiny_lm, d.text)) for d in sample_docs)
    buffer = _buffer(tiny_lm, sample_docs, n_contexts=4, batch_size=16, model_batch_size=1)
    n = n_text - 4 * 32 - 32  # stays inside the first epoch: everything seen once at most
    _, meta = zip(*buffer.batches(n, with_metadata=True))
    keys = torch.cat([torch.stack([m.doc_id, m.position], 1) for m in meta])
    assert len(keys) == n and len(torch.unique(keys, dim=0)) == n
    assert len(torch.unique(meta[0].doc_id)) > 1  # the first batch already mixes documents
    more = sum(len(b) for b in buffer.batches(2 * n_text))  # cycles over epochs forever
    assert more == 2 * n_text


def test_bundled_source_metadata_and_domains(tiny_lm):
    buffer = ActivationBuffer(tiny_lm, source="bundled", split="validation", context_len=64, n_contexts=16,
                              batch_size=256, progress=False)
    assert buffer.domains == DOMAINS
    docs = {d.doc_id: d for d in make_source("bundled", split="validation").docs}
    x, meta = next(buffer.batches(with_metadata=True))
    assert x.shape == (256, 64)
    for row in range(0, 256, 32):
        doc = docs[int(meta.doc_id[row])]
        assert _ids(tiny_lm, doc.text)[int(meta.position[row])] == meta.token_id[row]
        assert DOMAINS[meta.domain[row]] == doc.domain


def test_buffer_argument_errors(tiny_lm, sample_docs):
    with pytest.raises(ValueError, match="batch_size"):
        _buffer(tiny_lm, sample_docs, batch_size=1000)
    with pytest.raises(ValueError, match="n_ctx"):
        _buffer(tiny_lm, sample_docs, context_len=256)
    with pytest.raises(ValueError, match="n_tokens"):
        next(_buffer(tiny_lm, sample_docs).batches(0))


# ----------------------------------------------------------------------------- sources


def test_local_text_folder_source(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "alpha.txt").write_text("first file")
    (tmp_path / "beta.md").write_text("# second file")
    (tmp_path / "sub" / "gamma.rst").write_text("third file")
    (tmp_path / "ignored.py").write_text("print('no')")
    source = make_source(tmp_path)
    assert [(d.doc_id, d.domain, d.title) for d in source.docs] == [
        (0, "alpha", "alpha.txt"), (1, "beta", "beta.md"), (2, "gamma", "sub/gamma.rst")]
    assert source.domains == ("alpha", "beta", "gamma")
    assert make_source(str(tmp_path), label="mine").domains == ("mine",)
    single = make_source(tmp_path / "beta.md")
    assert [d.text for d in single.docs] == ["# second file"]


def test_source_errors(tmp_path):
    with pytest.raises(SourceError, match="neither 'bundled'"):
        make_source("no/such/place")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="has no"):
        make_source(tmp_path / "empty")
    (tmp_path / "blank.txt").write_text("  \n")
    with pytest.raises(SourceError, match="no text"):
        make_source(tmp_path / "blank.txt")
    with pytest.raises(SourceError, match="no text"):
        make_source(["", " "])
    with pytest.raises(SourceError, match="empty list"):
        make_source([])


@pytest.mark.parametrize("offline_env", [True, False])
def test_hf_streaming_source_offline_gives_clear_error(monkeypatch, offline_env):
    if not offline_env:  # the conftest still blocks all sockets: the quick reachability probe must catch it
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            monkeypatch.delenv(var, raising=False)
        import huggingface_hub.constants

        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    expected = "could not be streamed" if offline_env else "unreachable"
    with pytest.raises(SourceError, match=f"needs the Hugging Face hub.*{expected}.*source='bundled'"):
        next(make_source("hf:Skylion007/openwebtext").documents())


def test_list_of_strings_source(tiny_lm):
    buffer = ActivationBuffer(tiny_lm, source=["some text here"] * 3, context_len=8, n_contexts=4, batch_size=8,
                              progress=False)
    assert buffer.domains == ("text",)
    assert next(buffer.batches()).shape == (8, 64)


# ----------------------------------------------------------------------------- disk cache


def test_disk_cache_round_trip_equals_in_memory(tiny_lm, sample_docs, tmp_path):
    settings = {"source": sample_docs, "context_len": 32, "n_contexts": 8, "seed": 5}
    cache = harvest_to_disk(tiny_lm, tmp_path / "cache", n_tokens=1000, shard_tokens=300, progress=False,
                            **settings)
    buffer = ActivationBuffer(tiny_lm, batch_size=128, progress=False, **settings)
    x_mem, meta_mem = zip(*buffer.batches(1000, with_metadata=True))
    x_disk, meta_disk = zip(*cache.batches(128, shuffle=False, with_metadata=True))
    torch.testing.assert_close(torch.cat(x_disk), torch.cat(x_mem), rtol=0, atol=0)
    for field_disk, field_mem in zip(zip(*meta_disk), zip(*meta_mem)):
        assert torch.equal(torch.cat(field_disk), torch.cat(field_mem))

    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["hook"] == "blocks.0.hook_resid_post" and manifest["seed"] == 5
    assert manifest["model_name"] == tiny_lm.cfg.model_name and manifest["n_tokens"] == 1000
    assert [s["n_tokens"] for s in manifest["shards"]] == [300, 300, 300, 100]
    assert not list((tmp_path / "cache").glob("*.pkl"))
    assert np.load(tmp_path / "cache" / "acts_00000.npy", mmap_mode="r").shape == (300, 64)

    shuffled = torch.cat(list(cache.batches(128, seed=1)))
    assert not torch.equal(shuffled, torch.cat(x_mem))
    torch.testing.assert_close(shuffled, torch.cat(list(DiskActivations(cache.path).batches(128, seed=1))))
    assert torch.equal(shuffled.sort(0).values, torch.cat(x_mem).sort(0).values)  # same rows, reordered
    assert sum(len(b) for b in cache.batches(128, n_tokens=2500)) == 2500  # several shuffled passes


def test_disk_cache_reused_or_rejected(tiny_lm, sample_docs, tmp_path):
    path = tmp_path / "cache"
    small = {"source": sample_docs, "context_len": 32, "n_contexts": 8, "progress": False}
    harvest_to_disk(tiny_lm, path, n_tokens=200, **small)
    stamp = (path / "acts_00000.npy").stat().st_mtime_ns
    again = harvest_to_disk(tiny_lm, path, n_tokens=150, **small)
    assert len(again) == 200 and (path / "acts_00000.npy").stat().st_mtime_ns == stamp
    with pytest.raises(CacheMismatchError, match="hook: cache has 'blocks.0.hook_resid_post'"):
        harvest_to_disk(tiny_lm, path, n_tokens=200, hook="blocks.1.hook_resid_post", **small)
    with pytest.raises(CacheMismatchError, match="fewer than the requested"):
        harvest_to_disk(tiny_lm, path, n_tokens=500, **small)
    with pytest.raises(CacheMismatchError, match="model_name"):
        again.check(model_name="gpt2")
    again.check(tiny_lm, hook="blocks.0.hook_resid_post")  # matching settings pass
    other = harvest_to_disk(tiny_lm, path, n_tokens=100, hook="blocks.1.hook_resid_post", overwrite=True, **small)
    assert other.hook == "blocks.1.hook_resid_post" and len(other) == 100
    with pytest.raises(FileNotFoundError, match="harvest_to_disk"):
        DiskActivations(tmp_path / "nothing")


def test_disk_cache_get_rows(tiny_lm, sample_docs, tmp_path):
    cache = harvest_to_disk(tiny_lm, tmp_path, n_tokens=100, shard_tokens=30, source=sample_docs,
                            context_len=32, n_contexts=8, progress=False)
    everything, meta = cache.get(np.arange(100))
    picked, picked_meta = cache.get([99, 3, 31, 30])
    torch.testing.assert_close(picked, everything[[99, 3, 31, 30]], rtol=0, atol=0)
    assert torch.equal(picked_meta.token_id, meta.token_id[[99, 3, 31, 30]])
    with pytest.raises(IndexError):
        cache.get([100])
    assert all(isinstance(d, Document) for d in sample_docs)


def test_bench_harvest_command_runs(capsys):
    from switch_sae_mini.cli import main

    main(["bench-harvest", "--batch-sizes", "2", "--repeats", "1", "--threads", "1", "--end-to-end-tokens", "0"])
    out = capsys.readouterr().out
    assert "vectors/s" in out and "machine:" in out and "torch" in out


def test_disk_cache_damage_is_detected(tiny_lm, sample_docs, tmp_path):
    small = {"source": sample_docs, "context_len": 32, "n_contexts": 8, "progress": False}
    cache = harvest_to_disk(tiny_lm, tmp_path / "cache", n_tokens=600, shard_tokens=300, **small)
    shard = cache.path / "acts_00001.npy"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0x10  # one bit of one activation
    shard.write_bytes(bytes(data))
    with pytest.raises(CacheMismatchError, match="acts_00001.npy does not match its hash"):
        DiskActivations(cache.path)
    assert len(DiskActivations(cache.path, verify=False)) == 600  # shapes still check out: verify=False trusts it
    shard.unlink()
    with pytest.raises(CacheMismatchError, match="missing or unreadable shard"):
        DiskActivations(cache.path, verify=False)


CHILD_HARVEST = """
import os, signal, sys
import numpy as np
from switch_sae_mini import load_model
from switch_sae_mini.data.disk_cache import harvest_to_disk

opened = 0
open_memmap = np.lib.format.open_memmap

def killing_open_memmap(*args, **kwargs):  # SIGKILL while the third shard is being filled
    global opened
    opened += 1
    if opened == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return open_memmap(*args, **kwargs)

np.lib.format.open_memmap = killing_open_memmap
harvest_to_disk(load_model(sys.argv[1]), sys.argv[2], n_tokens=1000, shard_tokens=300, context_len=32,
                n_contexts=8, progress=False)
"""


def test_sigkill_during_harvest_to_disk_is_never_reused(tiny_lm, tiny_lm_dir, tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", CHILD_HARVEST, str(tiny_lm_dir), str(path)], timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL
    assert (path / "acts_00000.npy").exists() and not (path / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match="missing manifest.json"):
        DiskActivations(path)
    settings = {"n_tokens": 1000, "shard_tokens": 300, "context_len": 32, "n_contexts": 8, "progress": False}
    with pytest.warns(RuntimeWarning, match="partial activation cache .* rebuilding it"):
        rebuilt = harvest_to_disk(tiny_lm, path, **settings)
    fresh = harvest_to_disk(tiny_lm, tmp_path / "fresh", **settings)
    torch.testing.assert_close(torch.cat(list(rebuilt.batches(250, shuffle=False))),
                               torch.cat(list(fresh.batches(250, shuffle=False))), rtol=0, atol=0)


# ----------------------------------------------------------------------------- resumable streams


def _counting(monkeypatch):
    import switch_sae_mini.data.activations as activations_module

    calls = []
    original = activations_module.activations_from_contexts

    def counted(reader, batch, *args, **kwargs):
        calls.append(len(batch.tokens))  # contexts the model runs on
        return original(reader, batch, *args, **kwargs)

    monkeypatch.setattr(activations_module, "activations_from_contexts", counted)
    return calls


def test_buffer_stream_resumes_from_its_state_without_replaying(tiny_lm, sample_docs, monkeypatch):
    buffer = ActivationBuffer(tiny_lm, source=sample_docs, context_len=32, n_contexts=8, batch_size=64,
                              model_batch_size=2, seed=3, progress=False)
    full = list(zip(range(30), buffer.batches(with_metadata=True)))
    stream = buffer.batches(with_metadata=True)
    for _ in range(13):
        next(stream)
    state = stream.state_dict()
    calls = _counting(monkeypatch)
    resumed = buffer.batches(with_metadata=True)
    resumed.load_state_dict(state)
    # the model ran only on contexts with rows still in the pool: fewer than the stream had consumed, and never
    # more contexts than there are unread rows
    assert sum(calls) < 2 * state["consumed"] and sum(calls) <= len(state["origin"])
    for i in range(13, 30):
        x, meta = next(resumed)
        torch.testing.assert_close(x, full[i][1][0], rtol=0, atol=0)
        assert all(torch.equal(a, b) for a, b in zip(meta, full[i][1][1]))
    other = ActivationBuffer(tiny_lm, source=sample_docs, context_len=32, n_contexts=8, batch_size=32, seed=3,
                             progress=False)
    with pytest.raises(SwitchSAEError, match="batch_size: saved 64, now 32"):
        other.batches(with_metadata=True).load_state_dict(state)


def test_train_resumes_a_buffer_stream_exactly_without_replaying(tiny_lm, sample_docs, tmp_path, monkeypatch):
    import warnings

    from switch_sae_mini import SAEConfig, TrainConfig, load, train
    from switch_sae_mini.training import snapshots

    buffer = ActivationBuffer(tiny_lm, source=sample_docs, context_len=32, n_contexts=8, batch_size=64,
                              model_batch_size=2, seed=3, progress=False)
    cfg = SAEConfig(arch="switch", d_in=64, d_sae=64, k=4, n_experts=4)
    run = TrainConfig(n_steps=40, checkpoint_every=16, keep_checkpoints=3)
    calls = _counting(monkeypatch)
    uninterrupted = train(cfg, buffer.batches(), TrainConfig(n_steps=40), progress=False).sae
    contexts_for_40_steps = sum(calls)
    out = tmp_path / "run"
    train(cfg, buffer.batches(), run, checkpoint_dir=out, progress=False)
    last = snapshots.snapshot_names(out)[-1]
    assert last.endswith("step-00000040")
    shutil.rmtree(out / last)  # as if the job died after step 39: the step-32 snapshot is the newest
    (out / "latest").unlink()
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "drawn again" replay warning
        resumed = train(cfg, buffer.batches(), run, checkpoint_dir=out, resume=True, progress=False)
    for key, tensor in uninterrupted.state_dict().items():
        assert torch.equal(tensor, resumed.sae.state_dict()[key]), key
    assert torch.equal(load(out).W_enc, uninterrupted.W_enc)
    # the resumed run ran the model on its pool's contexts and on 8 steps' worth, not on 32 steps' history
    assert sum(calls) < contexts_for_40_steps / 2, (sum(calls), contexts_for_40_steps)


def test_disk_cache_stream_resumes_from_its_state(tiny_lm, sample_docs, tmp_path):
    cache = harvest_to_disk(tiny_lm, tmp_path / "cache", n_tokens=500, shard_tokens=200, source=sample_docs,
                            context_len=32, n_contexts=8, progress=False)
    full = list(cache.batches(64, seed=2, n_tokens=1400))
    stream = cache.batches(64, seed=2, n_tokens=1400)
    for _ in range(11):
        next(stream)
    resumed = cache.batches(64, seed=2, n_tokens=1400)
    resumed.load_state_dict(stream.state_dict())
    rest = list(resumed)
    assert len(rest) == len(full) - 11
    for a, b in zip(rest, full[11:]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(SwitchSAEError, match="seed: saved 2, now 3"):
        cache.batches(64, seed=3, n_tokens=1400).load_state_dict(stream.state_dict())


def test_checkpoints_record_where_the_activations_came_from(tiny_lm, sample_docs, tmp_path):
    from switch_sae_mini import SAEConfig, TrainConfig, load, train

    buffer = ActivationBuffer(tiny_lm, source=sample_docs, context_len=32, n_contexts=8, batch_size=64, seed=3,
                              progress=False)
    cfg = SAEConfig(arch="topk", d_in=64, d_sae=64, k=4)
    result = train(cfg, buffer.batches(), TrainConfig(n_steps=5, log_every=2), checkpoint_dir=tmp_path / "run",
                   progress=False)
    provenance = load(tmp_path / "run").provenance
    assert provenance["model_name"] == tiny_lm.cfg.model_name and provenance["hook"] == "blocks.0.hook_resid_post"
    assert (provenance["context_len"], provenance["prepend_bos"], provenance["split"]) == (32, True, "train")
    assert provenance["tokens_trained"] == 5 * 64 == result.sae.provenance["tokens_trained"]
    assert provenance["package_version"] and len(provenance["model_fingerprint"]) == 16
    cache = harvest_to_disk(tiny_lm, tmp_path / "cache", n_tokens=300, source=sample_docs, context_len=32,
                            n_contexts=8, progress=False)
    train(cfg, cache.batches(64, n_tokens=300), TrainConfig(n_steps=4), checkpoint_dir=tmp_path / "cached",
          progress=False)
    cached = load(tmp_path / "cached").provenance
    assert cached["activation_cache"] == str(cache.path) and cached["hook"] == provenance["hook"]
