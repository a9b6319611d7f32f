"""Counting parameters and multiply-accumulates (MACs) of a model, attention included.

fvcore traces the model and counts matmuls, convolutions, norms and upsampling, one fused multiply-add
being one MAC. It gives zero to ops it has no handle for; the handles below add the ones that cost MACs:

* ``aten::scaled_dot_product_attention``: QKᵀ and AV, 2·B·heads·N_q·N_kv·head_dim MACs for self-attention
  (read from the query's leading dims, so grouped-query attention with fewer key/value heads and
  cross-attention count right too).
* ``aten::_convolution_mode``: a convolution with ``padding="same"``/``"valid"`` (traced under this name).
* ``aten::baddbmm`` / ``aten::addbmm``: batched matmuls with an added term (what PyTorch's own
  ``nn.MultiheadAttention`` uses on some paths).
* ``aten::linalg_vector_norm``: one MAC per element (square and accumulate), like fvcore's norm handles.

Element-wise ops (add, mul, activations, softmax) and pooling are not counted, by the convention fvcore,
timm and the papers share. Any other op fvcore skipped is reported in ``uncounted_ops`` so nothing is lost
silently. Count on the uncompiled model in eval mode; ``torch.utils.flop_counter.FlopCounterMode`` ÷ 2
cross-checks the total (tests/test_benchmarks.py).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn as nn

# Ops fvcore skips that cost no MACs by the shared convention (element-wise, shape, pooling, indexing).
FREE_OPS = {
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "addcmul", "addcdiv", "div", "div_", "neg", "abs", "pow", "sqrt", "rsqrt",
    "exp", "log", "sin", "cos", "clamp", "clamp_", "clamp_min", "clamp_max", "where", "lt", "gt", "le", "ge", "eq",
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "gelu", "silu", "silu_", "sigmoid", "sigmoid_", "tanh",
    "tanh_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "leaky_relu", "leaky_relu_", "elu", "elu_",
    "softplus", "mish", "softmax", "log_softmax", "dropout", "dropout_", "feature_dropout", "alpha_dropout",
    "max_pool2d", "avg_pool2d", "avg_pool3d", "max_pool3d", "adaptive_max_pool2d", "max_pool1d", "avg_pool1d", "mean", "sum", "amax",
    "cat", "stack", "chunk", "split", "unbind", "flatten", "unflatten", "view", "reshape", "permute", "transpose",
    "contiguous", "expand", "repeat", "narrow", "slice", "select", "index", "gather", "roll", "pad",
    "constant_pad_nd", "reflection_pad2d", "zeros_like", "ones_like", "full_like", "new_zeros", "fill_",
    "copy_", "clone", "detach", "to", "type_as", "floor_divide", "remainder", "ceil", "floor", "round",
    "sign", "reciprocal", "erf", "std", "var", "squeeze", "unsqueeze", "channel_shuffle", "pixel_shuffle",
    "scalar_tensor", "arange", "linspace", "masked_fill", "triu", "tril", "einsum_path", "size", "numel",
}


def _shape(value) -> list[int]:
    return list(value.type().sizes())


def sdpa_macs(inputs: list, outputs: list) -> int:
    """QKᵀ plus AV: every query row meets every key (N_q·N_kv·d) and every value (N_q·N_kv·d_v)."""
    query, key, value = (_shape(v) for v in inputs[:3])
    queries = math.prod(query[:-1])  # batch × heads × N_q, however many leading dims there are
    return queries * key[-2] * query[-1] + queries * value[-2] * value[-1]


def conv_mode_macs(inputs: list, outputs: list) -> int:
    """Convolution with string padding: every output element costs in_channels/groups × kernel MACs."""
    weight = _shape(inputs[1])
    return math.prod(_shape(outputs[0])) * math.prod(weight[1:])


def batched_matmul_macs(inputs: list, outputs: list) -> int:
    """baddbmm(input, A, B) and addbmm: A (b, n, k) @ B (b, k, m) costs b·n·k·m."""
    a, b = _shape(inputs[1]), _shape(inputs[2])
    return math.prod(a) * b[-1]


def element_macs(inputs: list, outputs: list) -> int:
    return math.prod(_shape(inputs[0]))


EXTRA_HANDLES = {
    "aten::scaled_dot_product_attention": sdpa_macs,
    "aten::_convolution_mode": conv_mode_macs,
    "aten::baddbmm": batched_matmul_macs,
    "aten::addbmm": batched_matmul_macs,
    "aten::linalg_vector_norm": element_macs,
}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, list[str]]:
    """(MACs of one forward pass on ``example``, ops fvcore skipped that may cost MACs)."""
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; skipped ops are reported below
        analysis = FlopCountAnalysis(model, example).set_op_handle(**EXTRA_HANDLES)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        total = analysis.total()
        skipped = analysis.unsupported_ops()
    uncounted = sorted(op for op in skipped if op.split("::")[-1] not in FREE_OPS)
    return int(total), uncounted


def flop_counter_macs(model: nn.Module, example: torch.Tensor) -> int:
    """PyTorch's own count (FLOPs = 2 × MACs, matmuls and convolutions only), as MACs.

    Attention runs on SDPA's math backend here, so QKᵀ and AV reach the counter as plain batched
    matmuls: the fused kernels (CPU flash attention, say) have a FLOP formula under some torch versions
    and none under others, and a reference must not depend on which torch is installed."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    # With autograd on: FlopCounterMode's module tracker needs grad_fns.
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(example)
    return counter.get_total_flops() // 2


def profile_model(name: str, img_size: int, in_chans: int, num_classes: int) -> dict[str, Any]:
    """Build ``name`` for this input and count it; an input the model refuses raises ModelConfigError."""
    import zoo

    model = zoo.create_model(name, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
    example = torch.randn(1, in_chans, img_size, img_size)
    counted: dict[str, Any] = {"params": count_params(model)}
    try:
        macs, uncounted = count_macs(model, example)
    except RuntimeError:  # fvcore's tracer refuses torch.func calls (a Learngene ViT materialises its layers so)
        macs, uncounted = flop_counter_macs(model, example), []
        counted["note"] = "counted by torch.utils.flop_counter: matmuls and convolutions only"
    return {**counted, "gmacs": round(macs / 1e9, 4), "uncounted_ops": " ".join(uncounted)}
