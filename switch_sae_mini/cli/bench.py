"""Subcommands bench (training-step throughput, README "Speed"), bench-harvest (activation harvesting) and
bench-memory (RSS over a long run, README "Reliability").

    python -m switch_sae_mini bench --quick --peers .venv-peers/bin/python
    python -m switch_sae_mini bench-harvest
    python -m switch_sae_mini bench-memory --steps 10000
"""

from __future__ import annotations

from ..config import SAEConfig
from .flags import add_config_flags


def _bench(args) -> int:
    from ..bench import train_step

    train_step.run(args)
    return 0


def _bench_harvest(args) -> int:
    from ..bench import harvest

    harvest.run(args)
    return 0


def _bench_memory(args) -> int:
    from ..bench import memory

    memory.run(args)
    return 0


def register(sub) -> None:
    b = sub.add_parser("bench", help="training-step throughput of TopK and Switch SAEs on this machine",
                       description="One step is exactly what train() runs, on synthetic activations; "
                                   "every ratio in the printed table comes from this one run.")
    b.add_argument("--shape", choices=["all", "gpt2", "bundled"], default="all",
                   help="gpt2: d_in 768, d_sae 24576, k 32; bundled: d_in 128, d_sae 4096, k 32 "
                        "(default: %(default)s)")
    b.add_argument("--batch", type=int, nargs="+", help="batch sizes (default 4096 and, for gpt2, 16384)")
    b.add_argument("--steps", type=int, default=10,
                   help="timed steps per variant, median reported (default: %(default)s)")
    b.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    b.add_argument("--quick", action="store_true", help="only the variants the targets compare, batch 4096")
    b.add_argument("--only", nargs="+", help="run only variants whose name contains one of these strings")
    b.add_argument("--peers", metavar="PYTHON", help="interpreter with sae-lens and eai-sparsify installed "
                                                      "(make bench-peers builds .venv-peers)")
    b.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda when there is a GPU); on CUDA the "
                                                    "step runs under bf16 autocast (default: %(default)s)")
    b.add_argument("--json", metavar="PATH", help="also write every table as one JSON document here")
    b.add_argument("--distributed", type=int, metavar="N",
                   help="instead: torchrun N CPU ranks (expert and data parallel), per-rank throughput")
    b.set_defaults(run=_bench)

    h = sub.add_parser("bench-harvest", help="activation-harvesting throughput (vectors/s) of the bundled model")
    h.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64],
                   help="contexts per forward pass (default: %(default)s)")
    h.add_argument("--context-len", type=int, default=128, help="(default: %(default)s)")
    h.add_argument("--hook", default=None, help="hook point (default: the model's default hook)")
    h.add_argument("--repeats", type=int, default=7, help="(default: %(default)s)")
    h.add_argument("--threads", type=int, default=2, help="(default: %(default)s)")
    h.add_argument("--end-to-end-tokens", type=int, default=300_000,
                   help="tokens for the end-to-end buffer measurement, 0 skips it (default: %(default)s)")
    h.set_defaults(run=_bench_harvest)

    m = sub.add_parser("bench-memory", help="RSS over a long training run (nothing may accumulate per step)")
    m.add_argument("--steps", type=int, default=10_000, help="training steps (default: %(default)s)")
    m.add_argument("--warmup", type=int, default=500, help="steps before growth is measured (default: %(default)s)")
    m.add_argument("--every", type=int, default=250, help="sample RSS every this many steps (default: %(default)s)")
    add_config_flags(m, SAEConfig, ("arch", "n_experts"), choices={"arch": ["switch", "topk"]},
                     defaults={"arch": "switch", "n_experts": 8})
    m.add_argument("--batch", type=int, default=4096, help="activations per step (default: %(default)s)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(run=_bench_memory)
