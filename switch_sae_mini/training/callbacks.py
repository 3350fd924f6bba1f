"""Optional training callbacks: `train(..., callbacks=[...])` calls each as fn(step, row, sae) at logged steps."""

from __future__ import annotations

from typing import Any


class WandbLogger:
    """Log every history row to Weights & Biases. wandb is optional: a clear error if it is not installed."""

    def __init__(self, project: str = "switch_sae_mini", **init_kwargs: Any) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ImportError("WandbLogger needs the wandb package (pip install wandb); training itself does "
                              "not - drop the callback to train without it.") from exc
        self.wandb = wandb
        self.run = wandb.init(project=project, **init_kwargs)

    def __call__(self, step: int, row: dict, sae) -> None:
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        if "expert_share" in row:
            scalars.update({f"expert_share/{i}": v for i, v in enumerate(row["expert_share"])})
        self.wandb.log(scalars, step=step + 1)

    def finish(self) -> None:
        self.run.finish()


class PrintLogger:
    """Print chosen metrics at every logged step (useful in scripts without a progress bar)."""

    def __init__(self, keys=("loss", "fvu", "l0", "dead_fraction")) -> None:
        self.keys = keys

    def __call__(self, step: int, row: dict, sae) -> None:
        print(f"step {step + 1}: " + " ".join(f"{k}={row[k]:.4g}" for k in self.keys if k in row))
