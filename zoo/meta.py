"""Building a model's structure without memory: ``with on_meta(): model = create_model(...)``.

Inside, tensors are created on PyTorch's meta device (shapes and dtypes, no data). Random initialisers
are skipped there: a meta tensor holds no values to fill, and PyTorch runs each random fill of one
through a Python reference implementation (about 5 ms per tensor), which made building a large model
on meta take seconds (ViT-L/32: 6 s).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.init
from torch.overrides import TorchFunctionMode

_RANDOM_FILLS = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.bernoulli_, torch.Tensor.random_,
                 torch.Tensor.exponential_, torch.Tensor.log_normal_, torch.Tensor.cauchy_,
                 torch.Tensor.geometric_}


class _SkipInitialisersOnMeta(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        fills = func in _RANDOM_FILLS or getattr(func, "__module__", None) == torch.nn.init.__name__
        if fills and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]  # what an in-place initialiser returns: the tensor it would have filled
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def on_meta():
    with torch.device("meta"), _SkipInitialisersOnMeta():
        yield
