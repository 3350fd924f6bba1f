import sys
import types

import pytest

from switch_sae_mini import TrainConfig, train
from switch_sae_mini.training.callbacks import PrintLogger, WandbLogger
from switch_sae_mini.data.toy import ToyData

from conftest import tiny_cfg


def test_wandb_logger_logs_rows_without_network(monkeypatch):
    logged = []
    fake = types.SimpleNamespace(init=lambda **kw: types.SimpleNamespace(finish=lambda: None, kw=kw),
                                 log=lambda data, step: logged.append((step, data)))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    logger = WandbLogger(project="test", mode="offline")
    result = train(tiny_cfg("switch"), ToyData(d_in=16).batches(32), TrainConfig(n_steps=4, log_every=2),
                   callbacks=[logger], progress=False)
    assert [s for s, _ in logged] == [2, 4]
    assert logged[-1][1]["fvu"] == result.final["fvu"] and "expert_share/3" in logged[-1][1]
    assert sum(result.final["expert_share"]) == pytest.approx(1.0, abs=1e-3)


def test_wandb_logger_explains_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    with pytest.raises(ImportError, match="pip install wandb"):
        WandbLogger()


def test_print_logger(capsys):
    train(tiny_cfg("topk"), ToyData(d_in=16).batches(32), TrainConfig(n_steps=2, log_every=1),
          callbacks=[PrintLogger()], progress=False)
    assert capsys.readouterr().out.count("step ") == 2
