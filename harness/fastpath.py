"""The fast path of a run, chosen per model by measurement: autocast dtype and memory layout.

Whether bf16 autocast and channels_last speed up training on a CPU depends on the model: on an Intel
Xeon with AMX-BF16 at 32 px, both together train the CIFAR ResNet-18 about 2.5× faster, MobileNetV2 is
fastest in fp32 with channels_last, and the ImageNet ResNet-18 (stride-4 stem: tiny feature maps) is
slowest in bf16 (results/speed/ has the measurements). No single default wins, so ``amp=auto`` and
``channels_last=auto`` time a few training steps of each candidate at the start of a CPU run and keep
the fastest. On a GPU nothing is timed: bf16 autocast and NCHW, as before.

bf16 is a candidate only where the CPU computes it natively (AMX-BF16 or AVX512-BF16); elsewhere PyTorch
emulates it, which is never faster. fp16 is never a CPU candidate (it needs a gradient scaler and gains
nothing there).

The trial leaves no trace: it runs the run's own training step on its own model and optimizer, then
restores their states and every random generator, so a deterministic run with ``auto`` gives the same
weights as the same run with the chosen setting given explicitly. A run too short for the trial to pay
for itself, a compiled run (each candidate would compile anew) and a multi-process run (ranks could
choose differently) skip the timing and take the default.
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import torch

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TRIAL_WARMUP_STEPS = 1      # the first step of a setting pays for allocations and kernel selection
TRIAL_TIMED_STEPS = 2       # per candidate, after the warm-up
TRIAL_MAX_SHARE = 0.15      # the trial may cost at most this fraction of the run's planned steps


@dataclass(frozen=True)
class Setting:
    amp: str                 # off | bf16 | fp16
    channels_last: bool

    @property
    def dtype(self) -> torch.dtype | None:
        return AMP_DTYPES[self.amp]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def label(self) -> str:
        return f"{'fp32' if self.amp == 'off' else self.amp}_{'channels_last' if self.channels_last else 'nchw'}"


@dataclass
class Choice:
    setting: Setting
    how: str                                                         # timed | given | default: <why>
    trial_images_per_s: dict[str, float] = field(default_factory=dict)  # candidate label → img/s

    def record(self) -> dict:
        """What summary.json and metrics.csv say about the choice."""
        return {"amp": self.setting.amp, "channels_last": self.setting.channels_last, "fast_path": self.how,
                **{f"trial_img_s_{label}": round(rate, 1) for label, rate in self.trial_images_per_s.items()}}

    @classmethod
    def from_record(cls, record: dict) -> "Choice":
        rates = {k.removeprefix("trial_img_s_"): v for k, v in record.items() if k.startswith("trial_img_s_")}
        return cls(Setting(record["amp"], bool(record["channels_last"])), record["fast_path"], rates)

    def describe(self) -> str:
        if not self.trial_images_per_s:
            return f"fast path: {self.setting.label} ({self.how})"
        rates = ", ".join(f"{label} {rate:.0f}" for label, rate in
                          sorted(self.trial_images_per_s.items(), key=lambda item: -item[1]))
        return f"fast path: {self.setting.label}, the fastest of a timed trial (img/s: {rates})"


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The instruction-set flags /proc/cpuinfo lists (x86 "flags", Arm "Features"); empty where it is unreadable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    flags = set()
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags |= set(line.split(":", 1)[1].split())
    return flags


def native_bf16_cpu(cpuinfo: str | None = None) -> bool:
    """True where the CPU has bf16 arithmetic in hardware (x86 AMX-BF16 or AVX512-BF16, Arm BF16)."""
    return bool(cpu_flags(cpuinfo) & {"amx_bf16", "avx512_bf16", "bf16"})


# The widest vector or matrix unit a CPU has, best first: what decides its speed in fp32 and whether bf16 pays.
CPU_UNITS = [("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"), ("avx2", "AVX2"),
             ("bf16", "BF16"), ("asimd", "NEON")]


def cpu_unit(cpuinfo: str | None = None) -> str | None:
    """The best of CPU_UNITS this CPU has: two CPUs of one model name (a virtual "AMD EPYC") can differ here."""
    flags = cpu_flags(cpuinfo)
    return next((label for flag, label in CPU_UNITS if flag in flags), None)


def candidates(amp: str, channels_last: str, device_type: str, native_bf16: bool) -> list[Setting]:
    """The settings worth timing for the run's ``amp`` and ``channels_last`` keys."""
    if device_type != "cpu":
        amps = ["bf16"] if amp == "auto" else [amp]
        layouts = [False] if channels_last == "auto" else [channels_last == "true"]
    else:
        amps = (["off", "bf16"] if native_bf16 else ["off"]) if amp == "auto" else [amp]
        layouts = [False, True] if channels_last == "auto" else [channels_last == "true"]
    return [Setting(a, cl) for a in amps for cl in layouts]


def images_per_s(step: Callable[[Setting], None], setting: Setting, batch_size: int,
                 clock: Callable[[], float] = time.perf_counter) -> float:
    """Training images/s of ``setting``: warm-up steps, then the timed ones."""
    for _ in range(TRIAL_WARMUP_STEPS):
        step(setting)
    start = clock()
    for _ in range(TRIAL_TIMED_STEPS):
        step(setting)
    return TRIAL_TIMED_STEPS * batch_size / max(clock() - start, 1e-9)


def pick_fastest(settings: list[Setting], rate: Callable[[Setting], float]) -> Choice:
    """Time every candidate and keep the fastest (the first listed wins a tie: fp32, NCHW)."""
    rates = {s: rate(s) for s in settings}
    best = max(settings, key=lambda s: (rates[s], -settings.index(s)))
    return Choice(best, "timed", {s.label: r for s, r in rates.items()})


def trial_steps(n_candidates: int) -> int:
    return n_candidates * (TRIAL_WARMUP_STEPS + TRIAL_TIMED_STEPS)


class Stateful(Protocol):
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> object: ...


@contextlib.contextmanager
def restored_afterwards(objects: Iterable[Stateful], capture_rng: Callable[[], dict],
                        restore_rng: Callable[[dict], None]):
    """Training steps may run inside: on leaving, the objects' states and the RNGs are as on entering."""
    objects = list(objects)
    states = [copy.deepcopy(obj.state_dict()) for obj in objects]
    rng = capture_rng()
    try:
        yield
    finally:
        for obj, state in zip(objects, states):
            obj.load_state_dict(state)
        restore_rng(rng)


def layout_key(channels_last: bool | str) -> str:
    """The ``channels_last`` config value as auto | true | false."""
    return channels_last if channels_last == "auto" else "true" if channels_last in (True, "true") else "false"


def choose(amp: str, channels_last: str, device_type: str, *, planned_steps: int, batch_size: int,
           untimed_because: str | None, step: Callable[[Setting], None],
           preserved: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
           native_bf16: bool | None = None, clock: Callable[[], float] = time.perf_counter) -> Choice:
    """The run's setting. ``untimed_because`` is None, or why the run may not be timed (compile, ranks).
    ``step(setting)`` runs one training step in that setting, inside ``preserved()`` (which restores the
    run's state on leaving: ``restored_afterwards``)."""
    bf16_native = native_bf16_cpu() if native_bf16 is None else native_bf16
    settings = candidates(amp, channels_last, device_type, bf16_native)
    if len(settings) == 1:
        how = "given" if (amp != "auto" and channels_last != "auto") else f"default on {device_type}"
        return Choice(settings[0], how)
    default = settings[0]
    if untimed_because is not None:
        return Choice(default, f"default: {untimed_because}")
    if trial_steps(len(settings)) > TRIAL_MAX_SHARE * planned_steps:
        return Choice(default, f"default: {planned_steps} steps are too few to time {len(settings)} candidates")
    with preserved():
        return pick_fastest(settings, lambda s: images_per_s(step, s, batch_size, clock))
