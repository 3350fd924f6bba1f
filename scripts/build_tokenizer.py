"""Build the real GPT-2 tokenizer offline into ``switch_sae_mini/assets/tiny_gpt2/``.

GPT-2's BPE ranks (tiktoken's ``r50k_base``) ship inside the ``openai-whisper`` sdist as
``whisper/assets/gpt2.tiktoken`` (MIT). We download the sdist without installing it (installing would pull
numba, triton and an unpinned torch), check the file's hash, and convert it to a Hugging Face fast tokenizer.

Usage::

    python scripts/build_tokenizer.py [--cache-dir ~/.cache/switch_sae_mini_build] [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "switch_sae_mini" / "assets" / "tiny_gpt2"
DEFAULT_CACHE = Path.home() / ".cache" / "switch_sae_mini_build"
WHISPER_SDIST = "openai-whisper==20250625"
RANKS_MEMBER = "whisper/assets/gpt2.tiktoken"
RANKS_SHA256_PREFIX = "306cd27f"  # tiktoken's expected hash for r50k_base.tiktoken
# GPT-2's pre-tokenisation regex, as in tiktoken's r50k_base.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = "<|endoftext|>"


def fetch_ranks(cache: Path) -> Path:
    """Download the whisper sdist (no install) and extract the GPT-2 rank file; verify its sha256."""
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    sdists = sorted(downloads.glob("openai_whisper-20250625.tar.gz"))
    if not sdists:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "-d", str(downloads), WHISPER_SDIST], check=True)
        sdists = sorted(downloads.glob("openai_whisper-20250625.tar.gz"))
    with tarfile.open(sdists[0]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(RANKS_MEMBER))
        data = tar.extractfile(member).read()
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(RANKS_SHA256_PREFIX):
        raise RuntimeError(f"{RANKS_MEMBER} has sha256 {digest}, expected it to start with "
                           f"{RANKS_SHA256_PREFIX}")
    ranks = cache / "gpt2.tiktoken"
    ranks.write_bytes(data)
    return ranks


def read_ranks(path: str) -> dict[bytes, int]:
    """Parse a ``.tiktoken`` file (one ``<base64 token> <rank>`` per line) without needing tiktoken."""
    ranks = {}
    for line in Path(path).read_text(encoding="ascii").splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_tokenizer(ranks: Path):
    """A ``PreTrainedTokenizerFast`` equal to GPT-2's, with bos/eos/pad all ``<|endoftext|>`` (id 50256)."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class LocalTikTokenConverter(TikTokenConverter):
        load_tiktoken_bpe = staticmethod(read_ranks)  # the base class imports tiktoken just for this

    # transformers 5 calls the argument extra_special_tokens (4.x: additional_special_tokens); pass both.
    converter = LocalTikTokenConverter(vocab_file=str(ranks), pattern=GPT2_PATTERN,
                                       extra_special_tokens=[EOT], additional_special_tokens=[EOT])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=converter.converted(), bos_token=EOT, eos_token=EOT,
                                        pad_token=EOT, model_max_length=1024)
    checks = {"Hello world": [15496, 995], " the": [262], EOT: [50256]}
    for text, expected in checks.items():
        got = tokenizer.encode(text)
        if got != expected:
            raise RuntimeError(f"tokenizer check failed: {text!r} -> {got}, expected {expected}")
    if len(tokenizer) != 50257:
        raise RuntimeError(f"expected 50257 tokens, got {len(tokenizer)}")
    return tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="download cache (outside the repo)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    tokenizer = build_tokenizer(fetch_ranks(args.cache_dir))
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(args.out)
    print(f"saved GPT-2 tokenizer ({len(tokenizer)} tokens) to {args.out}")


if __name__ == "__main__":
    main()
