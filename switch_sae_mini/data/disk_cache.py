"""An on-disk activation cache: harvest once, train several SAEs on identical activations.

Layout of a cache folder (no pickles; readable with plain numpy)::

    manifest.json          what was harvested: model, hook, seed, source, split, shapes, shard list
    acts_00000.npy         float32 [n, d_in]   (memory-mapped when read)
    meta_00000.npy         int64   [n, 4]      doc_id, position, token_id, domain (see activations.TokenMetadata)
    ...

The rows are exactly the stream of ``ActivationBuffer(...).batches(n_tokens)`` with the same settings (already
shuffled across ``n_contexts`` contexts), so ``DiskActivations.batches(shuffle=False)`` reproduces the in-memory
stream and ``shuffle=True`` (default) reshuffles globally with its own seed.

Example::

    cache = harvest_to_disk(model, "acts/tiny-l2", n_tokens=2_000_000)   # reused if already there
    for x in cache.batches(batch_size=4096, seed=0):
        ...
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import ArgumentError, MissingFileError, OutOfRangeError, SwitchSAEError
from .activations import ActivationBuffer, TokenMetadata
from .models import model_fingerprint

FORMAT = "switch_sae_mini.activations/1"
MANIFEST = "manifest.json"
# Settings that must agree for a cache to be reused for a request.
MATCH_KEYS = ("model_name", "model_fingerprint", "hook", "source", "split", "context_len", "prepend_bos",
              "keep_bos", "n_contexts", "seed")


class CacheMismatchError(SwitchSAEError, ValueError):
    """An existing cache cannot serve the request: other settings (model, hook, ...), or damaged shards."""


def _sha256(path: Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def harvest_to_disk(model, path: str | os.PathLike, n_tokens: int, hook: str | None = None, source="bundled",
                    split: str = "train", domains=None, context_len: int = 128, n_contexts: int = 512,
                    seed: int = 0, prepend_bos: bool = True, keep_bos: bool = False, shard_tokens: int = 1 << 20,
                    overwrite: bool = False, progress: bool = True) -> DiskActivations:
    """Harvest ``n_tokens`` activations into memory-mapped shards under ``path`` and return the cache.

    If ``path`` already holds a complete cache with the same settings and at least ``n_tokens`` rows, it is reused
    without running the model. A cache with other settings raises ``CacheMismatchError`` unless ``overwrite``.
    Arguments as in ``ActivationBuffer``; ``shard_tokens`` rows per shard file.
    """
    if n_tokens <= 0 or shard_tokens <= 0:
        raise ArgumentError(f"n_tokens and shard_tokens must be positive, got {n_tokens}, {shard_tokens}.")
    buffer = ActivationBuffer(model, hook, source=source, split=split, domains=domains, context_len=context_len,
                              n_contexts=n_contexts, batch_size=min(4096, n_contexts * context_len // 2),
                              prepend_bos=prepend_bos, keep_bos=keep_bos, seed=seed, progress=False)
    settings = {"model_name": str(model.cfg.model_name), "model_fingerprint": model_fingerprint(model),
                "hook": buffer.hook, "source": buffer.source.name, "split": split, "context_len": context_len,
                "prepend_bos": prepend_bos, "keep_bos": keep_bos, "n_contexts": n_contexts, "seed": seed}
    path = Path(path)
    if (path / MANIFEST).exists() and not overwrite:
        cache = DiskActivations(path)
        cache.check(**settings)
        if cache.n_tokens < n_tokens:
            raise CacheMismatchError(f"cache {str(path)!r} holds {cache.n_tokens} tokens, fewer than the requested "
                                     f"{n_tokens}; pass overwrite=True to harvest again.")
        return cache
    path.mkdir(parents=True, exist_ok=True)
    leftovers = [path / MANIFEST, *path.glob("acts_*.npy"), *path.glob("meta_*.npy")]
    if any(p.exists() for p in leftovers) and not (path / MANIFEST).exists():
        # shards without a manifest: a harvest was interrupted; its rows cannot be trusted, so harvest again
        warnings.warn(f"{path} holds a partial activation cache (an interrupted harvest: shards but no "
                      f"{MANIFEST}); rebuilding it from scratch.", RuntimeWarning, stacklevel=2)
    for old in leftovers:
        old.unlink(missing_ok=True)

    shards, shard_acts, shard_meta, filled = [], None, None, 0
    with tqdm(total=n_tokens, desc=f"caching {buffer.hook}", unit="act", disable=not progress) as bar:
        for x, meta in buffer.batches(n_tokens, with_metadata=True):
            x, meta = x.cpu().numpy(), torch.stack(meta, dim=-1).cpu().numpy()
            while len(x):
                if shard_acts is None or filled == len(shard_acts):  # open the next shard
                    rows = min(shard_tokens, n_tokens - sum(s["n_tokens"] for s in shards))
                    name = f"{len(shards):05d}"
                    shards.append({"acts": f"acts_{name}.npy", "meta": f"meta_{name}.npy", "n_tokens": rows})
                    shard_acts = np.lib.format.open_memmap(path / shards[-1]["acts"], "w+", np.float32,
                                                           (rows, buffer.d_in))
                    shard_meta = np.lib.format.open_memmap(path / shards[-1]["meta"], "w+", np.int64, (rows, 4))
                    filled = 0
                take = min(len(x), len(shard_acts) - filled)
                shard_acts[filled:filled + take], shard_meta[filled:filled + take] = x[:take], meta[:take]
                filled, x, meta = filled + take, x[take:], meta[take:]
                bar.update(take)
                if filled == len(shard_acts):
                    shard_acts.flush(), shard_meta.flush()
    for shard in shards:  # content hashes: a flipped byte in a shard is detected when the cache is opened
        shard["sha256"] = {key: _sha256(path / shard[key]) for key in ("acts", "meta")}
    manifest = dict(format=FORMAT, **settings, d_in=buffer.d_in, n_tokens=n_tokens, dtype="float32",
                    meta_fields=list(TokenMetadata._fields), domains=list(buffer.domains), shards=shards)
    tmp = path / (MANIFEST + ".tmp")  # written last and renamed: a half-written cache has no manifest
    with open(tmp, "w") as f:
        f.write(json.dumps(manifest, indent=2))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path / MANIFEST)
    return DiskActivations(path)


class DiskActivations:
    """A finished activation cache (see the module docstring). ``path`` is the folder with ``manifest.json``."""

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        """verify=True (default) checks every shard against its sha256 in the manifest (about 1 s per GB);
        verify=False only checks shapes, for caches too large to hash at every open."""
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.exists():
            raise MissingFileError(f"no activation cache at {str(self.path)!r} (missing {MANIFEST}); create one "
                                    "with harvest_to_disk(model, path, n_tokens).")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ArgumentError(f"{manifest_path} has format {self.manifest.get('format')!r}, expected {FORMAT!r}.")
        for shard in self.manifest["shards"] if verify else ():
            for key, expected in shard.get("sha256", {}).items():  # caches made before 0.2.0 have no hashes
                if _sha256(self.path / shard[key]) != expected:
                    raise CacheMismatchError(f"{self.path / shard[key]} does not match its hash in {MANIFEST}: the "
                                             f"shard is damaged; harvest the cache again (overwrite=True).")
        try:
            self._acts = [np.load(self.path / s["acts"], mmap_mode="r") for s in self.manifest["shards"]]
            self._meta = [np.load(self.path / s["meta"], mmap_mode="r") for s in self.manifest["shards"]]
        except (OSError, ValueError) as exc:
            raise CacheMismatchError(f"cache {str(self.path)!r} has a missing or unreadable shard ({exc}); harvest "
                                     f"it again (overwrite=True).") from exc
        self._offsets = np.cumsum([0] + [len(a) for a in self._acts])
        if self._offsets[-1] != self.manifest["n_tokens"]:
            raise CacheMismatchError(f"cache {str(self.path)!r} is incomplete: shards hold {self._offsets[-1]} rows, "
                             f"the manifest says {self.manifest['n_tokens']}; harvest it again (overwrite=True).")

    n_tokens = property(lambda self: int(self.manifest["n_tokens"]))
    d_in = property(lambda self: int(self.manifest["d_in"]))
    hook = property(lambda self: self.manifest["hook"])
    model_name = property(lambda self: self.manifest["model_name"])
    domains = property(lambda self: tuple(self.manifest["domains"]))

    def __len__(self) -> int:
        return self.n_tokens

    def check(self, model=None, **expected) -> None:
        """Raise ``CacheMismatchError`` if the cache was made with other settings, e.g. ``check(model, hook=h)``."""
        if model is not None:
            expected.setdefault("model_name", str(model.cfg.model_name))
            expected.setdefault("model_fingerprint", model_fingerprint(model))
        diff = {k: (self.manifest.get(k), v) for k, v in expected.items() if self.manifest.get(k) != v}
        if diff:
            details = "; ".join(f"{k}: cache has {have!r}, requested {want!r}" for k, (have, want) in diff.items())
            raise CacheMismatchError(f"activation cache {str(self.path)!r} was made with different settings "
                                     f"({details}). Use another path, or overwrite=True to harvest again.")

    def get(self, index) -> tuple[Float[Tensor, "n d_in"], TokenMetadata]:
        """Rows ``index`` (int array, any order) as fp32 activations and their metadata."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(index) and (index.min() < 0 or index.max() >= self.n_tokens):
            raise OutOfRangeError(f"indices must be in 0..{self.n_tokens - 1}.")
        order = np.argsort(index, kind="stable")
        sorted_index = index[order]  # sorted reads are much faster on a memory map
        shard = np.searchsorted(self._offsets, sorted_index, side="right") - 1
        acts = np.empty((len(index), self.d_in), np.float32)
        meta = np.empty((len(index), 4), np.int64)
        for s in np.unique(shard):
            sel = shard == s
            rows = sorted_index[sel] - self._offsets[s]
            acts[order[sel]], meta[order[sel]] = self._acts[s][rows], self._meta[s][rows]
        return torch.from_numpy(acts), TokenMetadata(*torch.from_numpy(meta).unbind(-1))

    def read_all(self) -> tuple[Float[Tensor, "n d_in"], TokenMetadata]:
        """Every row in stored order, read into memory (fp32 activations and their metadata)."""
        acts = np.concatenate(self._acts) if len(self._acts) > 1 else np.array(self._acts[0])
        meta = np.concatenate(self._meta) if len(self._meta) > 1 else np.array(self._meta[0])
        return torch.from_numpy(acts), TokenMetadata(*torch.from_numpy(meta).unbind(-1))

    def batches(self, batch_size: int, seed: int = 0, n_tokens: int | None = None, shuffle: bool = True,
                with_metadata: bool = False, device="cpu") -> CacheIterator:
        """An iterator of ``[batch_size, d_in]`` fp32 batches (with ``TokenMetadata`` if asked).

        ``n_tokens=None`` makes one pass over the cache; a larger budget starts further passes, each reshuffled
        (seeded by ``seed`` and the pass number). ``shuffle=False`` reads in stored order. The iterator's
        ``state_dict()`` / ``load_state_dict()`` checkpoint its position (``train()`` resumes without replaying).
        """
        if batch_size <= 0:
            raise ArgumentError(f"batch_size must be positive, got {batch_size}.")
        return CacheIterator(self, batch_size, seed, n_tokens, shuffle, with_metadata, device)


class CacheIterator:
    """Batches of a DiskActivations in a seeded order; the position (pass, offset, budget) is its state."""

    def __init__(self, cache: DiskActivations, batch_size: int, seed: int, n_tokens: int | None, shuffle: bool,
                 with_metadata: bool, device) -> None:
        self.cache, self.batch_size, self.seed, self.shuffle = cache, batch_size, seed, shuffle
        self.with_metadata, self.device = with_metadata, device
        self._settings = {"n_rows": cache.n_tokens, "batch_size": batch_size, "seed": seed, "shuffle": shuffle,
                          "n_tokens": n_tokens, "hook": cache.hook}
        self._left = cache.n_tokens if n_tokens is None else n_tokens  # budget at the start of this pass
        self._epoch, self._start, self._order = 0, 0, None

    def __iter__(self) -> CacheIterator:
        return self

    def __next__(self):
        n = self.cache.n_tokens
        while self._left > 0:
            span = min(self._left, n)
            if self._start < span:
                if self._order is None:
                    self._order = (np.random.default_rng([self.seed, self._epoch]).permutation(n) if self.shuffle
                                   else np.arange(n))
                idx = self._order[self._start:min(self._start + self.batch_size, self._left)]
                self._start += self.batch_size
                x, meta = self.cache.get(idx)
                x = x.to(self.device)
                return (x, TokenMetadata(*(m.to(self.device) for m in meta))) if self.with_metadata else x
            self._left, self._epoch, self._start, self._order = self._left - span, self._epoch + 1, 0, None
        raise StopIteration

    def provenance(self) -> dict:
        """Where these activations come from: the settings the cache was harvested with."""
        m = self.cache.manifest
        return {"model_name": m["model_name"], "model_fingerprint": m["model_fingerprint"], "hook": m["hook"],
                "source": m["source"], "split": m["split"], "context_len": m["context_len"],
                "prepend_bos": m["prepend_bos"], "keep_bos": m["keep_bos"], "data_seed": m["seed"],
                "activation_cache": str(self.cache.path)}

    def state_dict(self) -> dict:
        return {"settings": self._settings, "left": self._left, "epoch": self._epoch, "start": self._start}

    def load_state_dict(self, state: dict) -> None:
        diff = {k: (v, self._settings.get(k)) for k, v in state["settings"].items() if self._settings.get(k) != v}
        if diff:
            raise ArgumentError("the saved position belongs to other cache or batch settings ("
                                + "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items()) + ").")
        self._left, self._epoch, self._start, self._order = state["left"], state["epoch"], state["start"], None
