"""Native (C) kernels for the CPU hot spots that torch does not cover fast enough, each with a torch fallback that
gives the same results: row-wise top-k (topk.py) and the allocator setting for training steps (allocator.py).
build.py compiles them at first use."""
