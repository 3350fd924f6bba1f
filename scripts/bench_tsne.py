"""Time scikit-learn's TSNE against openTSNE on dictionary-sized inputs, to choose the one chapter 05 uses.

    python scripts/bench_tsne.py            # 1024 and 4096 unit vectors in 128 dimensions (FAST and default 05)

Both run with PCA initialisation, perplexity 30 and 2 threads; the inputs are the decoder-like unit vectors of a
mixture of 16 directions, so that both find some structure. Prints seconds per method and size, and the CPU.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((16, d))
    x = centres[rng.integers(0, 16, n)] + 1.5 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def sklearn_tsne(x: np.ndarray) -> np.ndarray:
    from sklearn.manifold import TSNE
    return TSNE(2, perplexity=30, init="pca", random_state=0, n_jobs=2).fit_transform(x)


def open_tsne(x: np.ndarray) -> np.ndarray:
    from openTSNE import TSNE
    return np.asarray(TSNE(2, perplexity=30, initialization="pca", random_state=0, n_jobs=2).fit(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--d", type=int, default=128)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}")
    print(f"{'n':>6}  {'scikit-learn s':>14}  {'openTSNE s':>10}")
    for n in args.sizes:
        x = vectors(n, args.d)
        times = []
        for method in (sklearn_tsne, open_tsne):
            start = time.perf_counter()
            out = method(x)
            times.append(time.perf_counter() - start)
            assert out.shape == (n, 2)
        print(f"{n:>6}  {times[0]:>14.1f}  {times[1]:>10.1f}")


if __name__ == "__main__":
    main()
