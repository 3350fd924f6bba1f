"""Shared test fixtures: tiny configs, CPU default, and no network for any test."""

import os
import socket

import pytest
import torch

from switch_sae_mini import SAEConfig

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """The suite claims offline operation: any non-loopback connection or DNS lookup raises."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family == socket.AF_UNIX or host in _LOOPBACK:
            return real_connect(sock, address)
        raise NetworkBlocked(f"test tried to connect to {address}")

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host in _LOOPBACK or host is None:
            return real_getaddrinfo(host, *args, **kwargs)
        raise NetworkBlocked(f"test tried to resolve {host}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


@pytest.fixture(autouse=True, scope="session")
def course_cache(tmp_path_factory):
    """Tests never write the user's course cache (~/.cache/switch_sae_mini): one private folder per session."""
    previous = os.environ.get("SWITCH_SAE_MINI_CACHE")
    os.environ["SWITCH_SAE_MINI_CACHE"] = str(tmp_path_factory.mktemp("course-cache"))
    yield
    if previous is None:
        os.environ.pop("SWITCH_SAE_MINI_CACHE", None)
    else:
        os.environ["SWITCH_SAE_MINI_CACHE"] = previous


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def tiny_cfg(arch="topk", **overrides) -> SAEConfig:
    """d_in=16, d_sae=64, k=4 (and 4 experts for Switch): big enough to show every behaviour, fast."""
    base = dict(arch=arch, d_in=16, d_sae=64, k=4, n_experts=4 if arch == "switch" else 1)
    base.update(overrides)
    return SAEConfig(**base)


@pytest.fixture
def make_cfg():
    return tiny_cfg


# Language-model fixtures (tiny random GPT-2, sample documents) live in tests/conftest_lm.py.
pytest_plugins = ["conftest_lm"]
