"""Shared pytest set-up: the `gpu` marker skips cleanly on machines without a GPU."""

from __future__ import annotations

import pytest


def _gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _gpu_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a GPU (ROCm or CUDA); run with -m gpu on one")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
