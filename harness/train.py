"""The training loop: one for every model.

run(cfg): check the inputs → build the run from its config (data, model, optimizer, schedule) → restore it
from its last.pt on --resume → open its outputs (checkpoint folder locked, config written) → for each epoch:
train, validate, record, checkpoint → test the best-validation and the last weights → summary, plots, exports.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import zoo
from harness import checkpoint, export, fastpath
from harness.config import Config
from harness.data import NORMALISATION, BatchStream, Streams, open_data
from harness.distill import Teacher
from harness.distributed import Dist, init_distributed, shutdown, weights_in_sync
from harness.errors import TrainingDiverged, UsageError
from harness.faults import kill_point
from harness.io import check_writable, remove_stale_temporaries
from harness.plots import plot_curves
from harness.augment import MixupCutmix
from harness.ema import ModelEma
from harness.optim import SAM, frozen_batchnorm_stats
from harness.recipes import GradientClipping, build_optimizer, build_scheduler
from harness.results import RunRecord, environment, new_run_id, recipe_used


@dataclass
class StepTools:
    """The recipe's per-step parts beyond optimizer and schedule."""
    clipping: GradientClipping
    mixer: MixupCutmix | None = None
    ema: ModelEma | None = None
    teacher: Teacher | None = None


@dataclass
class TrainState:
    epoch: int = 0                       # epochs completed
    step: int = 0                        # optimizer steps taken
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_top1: float = -1.0
    elapsed_s: float = 0.0               # training and validation time over all sessions of the run
    # Set while last.pt holds a mid-epoch state (see save_mid_epoch): the epoch's steps so far, the sums of
    # their training metrics and their seconds; empty at every epoch's end.
    epoch_progress: dict[str, float] = field(default_factory=dict)
    fast_path: dict[str, Any] = field(default_factory=dict)  # the first session's choice, kept on resume


# ---------------------------------------------------------------- set-up


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device={name} but no CUDA GPU is visible: use --device=cpu or --device=auto")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not deterministic


def resolve_img_size(cfg: Config, info: zoo.ModelInfo) -> int:
    """--img-size wins; otherwise the dataset's size raised to the model's smallest accepted size."""
    if cfg.img_size is not None:
        return cfg.img_size
    if cfg.input_size < info.min_size:
        print(f"note: {info.name} needs at least {info.min_size}px input; "
              f"{cfg.dataset}'s {cfg.input_size}px images are resized to {info.min_size}px")
        return info.min_size
    return cfg.input_size


def speed_settings(cfg: Config, device: torch.device, ranks: Dist, info: zoo.ModelInfo, model: nn.Module,
                   optimizer: torch.optim.Optimizer, data: Streams, teacher: Teacher | None,
                   recorded: dict[str, Any]) -> fastpath.Choice:
    """The run's autocast dtype and memory layout (harness/fastpath.py), decided once, here, after the model
    and optimizer are built and before training. On a CPU with ``auto`` a few training steps of each
    candidate are timed on the run's own model and optimizer, whose states (and the RNGs) are restored
    afterwards. A resumed run keeps the choice its first session made (``recorded``)."""
    if recorded:
        return fastpath.Choice.from_record(recorded)
    not_timed = ("a compiled run would compile every candidate" if cfg.compile else
                 f"{ranks.world_size} processes could choose differently" if ranks.enabled else None)
    x, y = next(iter(data.train.epoch(0)))
    tools = StepTools(GradientClipping(cfg, model), MixupCutmix.from_config(cfg, data.num_classes), teacher=teacher)
    no_scaler = torch.amp.GradScaler(device.type, enabled=False)  # fp16 is never a timed candidate

    def step(setting: fastpath.Setting) -> None:
        model.to(memory_format=setting.memory_format)
        train_step(model, x.contiguous(memory_format=setting.memory_format), y, optimizer, no_scaler, setting.dtype,
                   cfg, info.aux_loss_weights, tools)

    choice = fastpath.choose(
        cfg.amp, fastpath.layout_key(cfg.channels_last), device.type,
        planned_steps=cfg.epochs * steps_per_epoch(cfg, data.train), batch_size=len(y),
        untimed_because=not_timed, step=step, preserved=lambda: fastpath.restored_afterwards([model, optimizer], checkpoint.capture_rng,
                                                                  checkpoint.restore_rng))
    model.zero_grad(set_to_none=True)
    return choice


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """The mixed-precision context of every forward pass (a no-op when amp_dtype is None)."""
    return torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)


def steps_per_epoch(cfg: Config, train: BatchStream) -> int:
    return len(train) if cfg.max_steps_per_epoch == 0 else min(len(train), cfg.max_steps_per_epoch)


def summed_over_ranks(ranks: Dist, device: torch.device, *values) -> list[float]:
    """Per-rank totals (tensors or numbers) summed over the ranks of the run, in one all-reduce."""
    totals = torch.stack([torch.as_tensor(v, dtype=torch.double, device=device) for v in values])
    return ranks.sum_(totals).tolist()


# ---------------------------------------------------------------- steps


def split_output(output) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Models with auxiliary heads return (logits, (aux, ...)) in training mode."""
    return (output[0], tuple(output[1])) if isinstance(output, tuple) else (output, ())


def classification_loss(output, target: torch.Tensor, aux_weights: tuple[float, ...],
                        label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    logits, aux = split_output(output)
    loss = F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    for weight, aux_logits in zip(aux_weights, aux):
        loss = loss + weight * F.cross_entropy(aux_logits, target, label_smoothing=label_smoothing)
    return loss, logits


def train_step(model, x, y, optimizer, scaler, amp_dtype, cfg: Config, aux_weights, tools: StepTools):
    """One optimizer step: (mixup/cutmix) → (the teacher's logits) → loss and gradient → (SAM's second gradient
    at the perturbed weights, BatchNorm statistics untouched) → (AGC, norm clipping) → optimizer; then the EMA."""
    inputs, target = tools.mixer(x, y) if tools.mixer else (x, y)
    teacher = tools.teacher
    with autocast(x.device, amp_dtype):
        teacher_logits = teacher.logits(inputs) if teacher else None  # once: SAM's second pass sees the same batch

    def loss_and_gradient():
        with autocast(x.device, amp_dtype):
            loss, logits = classification_loss(model(inputs), target, aux_weights, cfg.label_smoothing)
            if teacher:
                loss = teacher.loss(loss, logits, teacher_logits)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        return loss, logits

    loss, logits = loss_and_gradient()
    if isinstance(optimizer, SAM):
        optimizer.perturb()
        with frozen_batchnorm_stats(model):
            loss_and_gradient()
        optimizer.restore()
    if tools.clipping.active:
        scaler.unscale_(optimizer)
        tools.clipping()
    scaler.step(optimizer)
    scaler.update()
    if tools.ema is not None:
        tools.ema.update(model)
    return loss, logits


# ---------------------------------------------------------------- the run


@dataclass
class Session:
    """Everything one run holds: built by ``build_run`` (and ``restore`` on resume), advanced by ``fit``,
    closed by ``finish``."""
    cfg: Config
    ranks: Dist
    device: torch.device
    info: zoo.ModelInfo
    img_size: int
    data: Streams
    steps_per_epoch: int
    model: nn.Module          # the plain module: checkpoints, evaluation, exports
    train_model: nn.Module    # what the training step calls: DDP- and/or compile-wrapped model
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    fast_path: fastpath.Choice
    tools: StepTools
    checkpoints: Path         # this run's checkpoint folder (written only with cfg.checkpoint)
    record: RunRecord
    state: TrainState = field(default_factory=TrainState)
    best_weights: dict | None = None
    resumed_from: Path | None = None           # the last.pt this session continues
    owed_best: checkpoint.BestCheckpoint | None = None  # a best.pt that a killed session never wrote

    @property
    def selected(self) -> nn.Module:
        """The weights that compete for the best epoch: the EMA's when the recipe says so."""
        ema = self.tools.ema
        return ema.module if ema is not None and self.cfg.ema_select else self.model

    @property
    def writes_checkpoints(self) -> bool:
        return self.cfg.checkpoint and self.ranks.is_main

    def position(self) -> str:
        """How far the run has got: "epoch 3", or "epoch 3 and 40 of the 421 steps of epoch 4" mid-epoch."""
        steps = self.state.epoch_progress.get("steps")
        within = f" and {steps} of the {self.steps_per_epoch} steps of epoch {self.state.epoch + 1}" if steps else ""
        return f"epoch {self.state.epoch}{within}"

    @property
    def writes_mid_epoch(self) -> bool:
        """One process only: the ranks of a data-parallel run would each stop at a step of their own."""
        return self.writes_checkpoints and self.cfg.checkpoint_minutes > 0 and self.ranks.world_size == 1

    def say(self, message: str) -> None:
        if self.ranks.is_main:
            print(message, flush=True)


def train_one_epoch(s: Session, epoch: int) -> dict[str, float]:
    model, device, state = s.train_model, s.device, s.state
    model.train()
    carried = state.epoch_progress  # what a mid-epoch last.pt had done of this epoch ({} when starting it)
    first_step = int(carried.get("steps", 0))
    loss_sum = torch.full((), carried.get("loss_sum", 0.0), device=device)
    correct = torch.full((), int(carried.get("correct", 0)), device=device, dtype=torch.long)
    seen, first_bad_step = int(carried.get("seen", 0)), torch.full((), -1, device=device, dtype=torch.long)
    bar = tqdm(total=s.steps_per_epoch, initial=first_step, desc=f"epoch {epoch + 1}/{s.cfg.epochs}", leave=False,
               disable=not (sys.stderr.isatty() and s.ranks.is_main))
    start = written = time.perf_counter()
    earlier_s = carried.get("time_s", 0.0)  # this epoch's training seconds before this session (minus writes)
    for i, (x, y) in enumerate(s.data.train.epoch(epoch, first_step), first_step):
        if i == s.steps_per_epoch:
            break
        loss, logits = train_step(model, x, y, s.optimizer, s.scaler, s.amp_dtype, s.cfg, s.info.aux_loss_weights,
                                  s.tools)
        s.scheduler.step()
        kill_point("step")
        detached = loss.detach()
        # Divergence is noted on the device (no sync per step) and checked once per epoch.
        first_bad_step = torch.where((first_bad_step < 0) & ~torch.isfinite(detached),
                                     torch.full_like(first_bad_step, state.step), first_bad_step)
        state.step += 1
        loss_sum += detached.float() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if bar.disable is False and i % 10 == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{100 * correct.item() / seen:.1f}",
                            img_s=f"{seen / (earlier_s + time.perf_counter() - start):.0f}")
        bar.update()
        if (s.writes_mid_epoch and i + 1 < s.steps_per_epoch  # the epoch's end writes its own
                and time.perf_counter() - written >= 60 * s.cfg.checkpoint_minutes):
            raise_if_diverged(first_bad_step.item(), epoch)  # last.pt keeps only finite states
            writing = time.perf_counter()
            save_mid_epoch(s, {"steps": i + 1, "loss_sum": loss_sum.item(), "correct": correct.item(), "seen": seen,
                               "time_s": earlier_s + writing - start})
            written = time.perf_counter()
            start += written - writing  # the write's seconds are not training time
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = earlier_s + time.perf_counter() - start
    loss_total, correct_total, seen_total = summed_over_ranks(s.ranks, device, loss_sum, correct, seen)
    raise_if_diverged(s.ranks.max_(first_bad_step).item(), epoch)
    seen_total = max(seen_total, 1)
    return {"train_loss": loss_total / seen_total, "train_top1": 100.0 * correct_total / seen_total,
            "lr": s.optimizer.param_groups[0]["lr"], "epoch_time_s": elapsed, "images_per_s": seen_total / elapsed}


def raise_if_diverged(first_bad_step: int, epoch: int) -> None:
    if first_bad_step >= 0:
        raise TrainingDiverged(f"loss became NaN or infinite at step {first_bad_step} (epoch {epoch + 1})")


@torch.no_grad()
def evaluate(model: nn.Module, stream: BatchStream, s: Session) -> dict[str, float]:
    """Loss, top-1 and top-5 of ``model`` (the session's model or its EMA) over ``stream``, all ranks together."""
    model.eval()
    loss_sum = torch.zeros((), device=s.device)
    top1 = torch.zeros((), device=s.device, dtype=torch.long)
    top5 = torch.zeros((), device=s.device, dtype=torch.long)
    k, n = min(5, s.data.num_classes), 0
    for x, y in stream.epoch(0):
        with autocast(s.device, s.amp_dtype):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        best = logits.topk(k, dim=1).indices
        top1 += (best[:, 0] == y).sum()
        top5 += (best == y[:, None]).any(1).sum()
        n += len(y)
        kill_point("eval")
    loss_total, top1_total, top5_total, n_total = summed_over_ranks(s.ranks, s.device, loss_sum, top1, top5, n)
    return {"loss": loss_total / n_total, "top1": 100.0 * top1_total / n_total, "top5": 100.0 * top5_total / n_total}


def wrap_for_training(cfg: Config, model: nn.Module, ranks: Dist, device: torch.device) -> nn.Module:
    if ranks.enabled:
        if cfg.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model, backend=cfg.compile_backend) if cfg.compile else model


def check_outputs(cfg: Config) -> None:
    """Refuse output folders that cannot be written, before anything is built or written."""
    check_writable(cfg.results_dir, "results-dir")
    check_writable(cfg.plots_dir, "plots-dir")
    if cfg.checkpoint:
        check_writable(cfg.checkpoint_dir, "checkpoint-dir")


def check_batch_norm_batch(cfg: Config, model: nn.Module, ranks: Dist) -> None:
    """BatchNorm cannot train on a batch of one image (training batches are always full: the stream drops
    the remainder); refused before the first step rather than raised in it."""
    if cfg.batch_size == 1 and not (cfg.sync_bn and ranks.enabled) and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise UsageError(f"{cfg.model} has BatchNorm layers, which cannot train on batches of 1 image: "
                         f"use --batch-size=2 or more")


def build_run(cfg: Config, checkpoints: Path, recorded_fast_path: dict[str, Any]) -> Session:
    """A fresh run from its config: data, model, optimizer, schedule and the recipe's tools. Writes nothing."""
    ranks, rank_device = init_distributed(cfg.device)
    device = rank_device or select_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    info = zoo.get_model_info(cfg.model)
    img_size = resolve_img_size(cfg, info)
    data = open_data(cfg, img_size, device, ranks)
    model = zoo.create_model(cfg.model, num_classes=data.num_classes, in_chans=data.in_chans, img_size=img_size,
                             pretrained=cfg.pretrained, **cfg.model_kwargs).to(device)
    check_batch_norm_batch(cfg, model, ranks)
    optimizer = build_optimizer(cfg, model)
    teacher = (Teacher.load(cfg.teacher, mean_std=NORMALISATION[cfg.dataset], num_classes=data.num_classes,
                            in_chans=data.in_chans, alpha=cfg.distill_alpha, temperature=cfg.distill_temperature,
                            device=device)
               if cfg.teacher else None)
    fast = speed_settings(cfg, device, ranks, info, model, optimizer, data, teacher, recorded_fast_path)
    model.to(memory_format=fast.setting.memory_format)  # in place: the optimizer keeps the same parameters
    if fast.setting.channels_last:
        data.use_channels_last()
    amp_dtype = fast.setting.dtype
    n_steps = steps_per_epoch(cfg, data.train)
    ema = ModelEma(model, cfg.ema_decay, cfg.ema_warmup) if cfg.ema_decay > 0 else None
    tools = StepTools(GradientClipping(cfg, model), MixupCutmix.from_config(cfg, data.num_classes), ema, teacher)
    return Session(cfg=cfg, ranks=ranks, device=device, info=info, img_size=img_size, data=data,
                   steps_per_epoch=n_steps, model=model, train_model=wrap_for_training(cfg, model, ranks, device),
                   optimizer=optimizer, scheduler=build_scheduler(cfg, optimizer, n_steps),
                   scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
                   amp_dtype=amp_dtype, fast_path=fast, tools=tools, checkpoints=checkpoints,
                   record=RunRecord(cfg.results_dir, new_run_id(cfg.model, cfg.dataset, cfg.seed)),
                   state=TrainState(fast_path=fast.record()))


def restore(s: Session, last: checkpoint.LastCheckpoint, path: Path) -> None:
    """Continue the run that ``last`` (read from ``path``) checkpointed: every resume step is here."""
    ema = s.tools.ema
    checkpoint.check_fits(last, path, model=s.model.state_dict(), optimizer=s.optimizer.state_dict(),
                          parameter_shapes=[p.shape for group in s.optimizer.param_groups for p in group["params"]],
                          scheduler=s.scheduler.state_dict(), scaler=s.scaler.state_dict(),
                          ema=ema.state_dict() if ema is not None else None, state=asdict(TrainState()))
    s.model.load_state_dict(last.model)
    s.optimizer.load_state_dict(last.optimizer)
    s.scheduler.load_state_dict(last.scheduler)
    s.scaler.load_state_dict(last.scaler)
    if ema is not None:
        ema.load_state_dict(last.ema)
    s.state = TrainState(**last.state)
    if s.state.epoch_progress.get("steps", 0) >= s.steps_per_epoch:
        raise UsageError(f"checkpoint {path} stopped at step {s.state.epoch_progress['steps']} of an epoch, but "
                         f"this run's epochs have {s.steps_per_epoch} steps: resume with the batch size, dataset "
                         f"and number of processes it was trained with")
    checkpoint.restore_rng(last.rng)
    s.best_weights = checkpoint.best_weights_on_resume(last, path.parent, s.model.state_dict())
    s.owed_best = checkpoint.owed_best(last, path.parent)
    s.record = RunRecord(s.cfg.results_dir, last.run_id)
    s.resumed_from = path


def setup(cfg: Config) -> Session:
    """Check every input, then build the run (restored from its checkpoint with --resume)."""
    check_outputs(cfg)
    checkpoints = checkpoint.checkpoint_folder(cfg)
    resume_path = checkpoint.resolve_resume(cfg, checkpoints)
    last = checkpoint.load_last(resume_path) if resume_path else None
    if last:
        checkpoint.check_compatible(last, cfg, resume_path)
    session = build_run(cfg, checkpoints, checkpoint.recorded_fast_path(last, resume_path) if last else {})
    if last:
        restore(session, last, resume_path)
    return session


def open_outputs(s: Session) -> None:
    """Written here (rank 0), once all input is good: the epoch-0 checkpoint or the best.pt a killed session
    owed, the run's config and, on resume, its metrics so far. Needs the checkpoint folder's lock."""
    if s.ranks.is_main:
        if s.writes_checkpoints:
            if s.resumed_from is None:  # epoch 0: a run killed in its first epoch resumes into its run folder
                save_last(s)
            elif s.owed_best is not None:
                checkpoint.save(s.checkpoints / checkpoint.BEST, s.owed_best)
        s.record.write_config(s.cfg.to_dict())
        write_status(s, "running")
        if s.resumed_from is not None:  # a run killed between its last.pt and its metrics.csv catches up here
            remove_stale_temporaries(s.record.folder)
            s.record.write_metrics(s.state.history)
    if s.resumed_from is not None:
        s.say(f"resumed from {s.resumed_from} after {s.position()}")
    n_params = sum(p.numel() for p in s.model.parameters())
    n_train, n_val, n_test = s.data.sizes
    s.say(f"{s.info.name}: {n_params / 1e6:.2f}M params, {s.img_size}px, {s.cfg.dataset} ({n_train} train / "
          f"{n_val} val / {n_test} test) on {s.device} x{s.ranks.world_size}; run {s.record.run_id}")
    s.say(s.fast_path.describe())


def save_last(s: Session) -> None:
    ema = s.tools.ema
    checkpoint.save(s.checkpoints / checkpoint.LAST, checkpoint.LastCheckpoint(
        model=s.model.state_dict(), optimizer=s.optimizer.state_dict(), scheduler=s.scheduler.state_dict(),
        scaler=s.scaler.state_dict(), state=asdict(s.state), rng=checkpoint.capture_rng(),
        config=s.cfg.to_dict(), run_id=s.record.run_id, ema=ema.state_dict() if ema is not None else None,
        model_spec=export.checkpoint_spec(s, "last")))


def save_mid_epoch(s: Session, progress: dict[str, float]) -> None:
    """last.pt between two steps of an epoch, so that a long epoch killed near its end is not lost; best.pt
    (written at the end of its epoch, before this) stays as it is."""
    s.state.epoch_progress = progress
    save_last(s)


def save_checkpoints(s: Session, improved: bool) -> None:
    """last.pt first: best.pt is never ahead of it (see harness/checkpoint.py)."""
    save_last(s)
    if improved:
        checkpoint.save(s.checkpoints / checkpoint.BEST, checkpoint.BestCheckpoint(
            s.best_weights, s.state.epoch, s.cfg.to_dict(), s.record.run_id, export.checkpoint_spec(s, "best")))


def write_status(s: Session, status: str, reason: str | None = None) -> None:
    """The run folder's summary.json while the run is not completed: running, interrupted or failed (rank 0)."""
    if s.ranks.is_main:
        s.record.write_summary({"status": status, **({"reason": reason} if reason else {}), "run_id": s.record.run_id,
                                "model": s.info.name, "dataset": s.cfg.dataset, "seed": s.cfg.seed,
                                "epochs_completed": s.state.epoch, **environment(s.device)})


def record_divergence(s: Session, err: TrainingDiverged) -> TrainingDiverged:
    """Write the failed run's summary (the checkpoints stay as the last good epoch left them)."""
    kept = (f"{s.checkpoints / checkpoint.LAST} (epoch {s.state.epoch}) is untouched"
            if s.cfg.checkpoint else "no checkpoint")
    reason = f"{err}: the run stopped, {kept}; try a lower --lr or --grad-clip"
    write_status(s, "failed", reason)
    return TrainingDiverged(reason)


def fit(s: Session) -> None:
    for epoch in range(s.state.epoch, s.cfg.epochs):
        epoch_start = time.perf_counter()
        earlier_s = s.state.epoch_progress.get("time_s", 0.0)  # seconds a mid-epoch last.pt had spent on it
        try:
            train_metrics = train_one_epoch(s, epoch)
        except TrainingDiverged as err:
            raise record_divergence(s, err) from None
        s.ranks.broadcast_buffers_(s.model)
        val = evaluate(s.model, s.data.val, s)
        row = {"epoch": epoch + 1, **train_metrics, "val_loss": val["loss"], "val_top1": val["top1"],
               "val_top5": val["top5"], "amp": s.fast_path.setting.amp,
               "channels_last": s.fast_path.setting.channels_last}
        ema_note = ""
        if s.tools.ema is not None:
            val_ema = evaluate(s.tools.ema.module, s.data.val, s)
            row.update(val_loss_ema=val_ema["loss"], val_top1_ema=val_ema["top1"])
            ema_note = f" (EMA {val_ema['top1']:.2f}%)"
        if not all(math.isfinite(row[k]) for k in ("val_loss", "val_loss_ema") if k in row):
            raise record_divergence(s, TrainingDiverged(f"validation loss became NaN or infinite (epoch {epoch + 1})"))
        s.state.epoch, s.state.epoch_progress = epoch + 1, {}
        s.state.elapsed_s += earlier_s + time.perf_counter() - epoch_start
        s.state.history.append(row)
        score = row["val_top1_ema"] if s.selected is not s.model else val["top1"]
        improved = score > s.state.best_val_top1
        if improved:
            s.state.best_epoch, s.state.best_val_top1 = s.state.epoch, score
            s.best_weights = copy.deepcopy({k: v.detach().cpu() for k, v in s.selected.state_dict().items()})
        if s.writes_checkpoints:
            save_checkpoints(s, improved)
        if s.ranks.is_main:
            s.record.write_metrics(s.state.history)
        s.say(f"epoch {s.state.epoch}/{s.cfg.epochs}  train loss {train_metrics['train_loss']:.4f} "
              f"acc {train_metrics['train_top1']:.2f}%  val loss {val['loss']:.4f} top-1 {val['top1']:.2f}% "
              f"top-5 {val['top5']:.2f}%{ema_note}  lr {train_metrics['lr']:.2e}  {train_metrics['epoch_time_s']:.1f}s "
              f"{train_metrics['images_per_s']:.0f} img/s")


def evaluate_on_test(s: Session) -> dict[str, dict[str, float] | None]:
    """Test-set metrics of the last weights, the best-validation weights and (with one) the EMA."""
    test = s.data.test
    ema = s.tools.ema
    results = {"last": evaluate(s.model, test, s), "ema": evaluate(ema.module, test, s) if ema is not None else None}
    results["best"] = results["ema"] if s.selected is not s.model else results["last"]
    if s.best_weights is not None and s.state.best_epoch != s.state.epoch:  # else the selected weights are the best
        final_weights = copy.deepcopy(s.model.state_dict())
        s.model.load_state_dict(s.best_weights)
        results["best"] = evaluate(s.model, test, s)
        s.model.load_state_dict(final_weights)
    return results


def write_final_outputs(s: Session, summary: dict[str, Any]) -> None:
    """Rank 0's exports and plots, then the summary that marks the run completed."""
    if s.cfg.model_save:
        export.export_model(s, summary)
    plot_curves(s.state.history, s.info.name, s.cfg.dataset, s.record.folder, s.cfg.plots_dir)
    s.record.write_summary(summary)


def finish(s: Session, started: float) -> dict[str, Any]:
    """Test the last and the best-validation weights, then write the summary, plots and exports (rank 0)."""
    if not weights_in_sync(s.model, s.ranks):
        raise RuntimeError("ranks ended with different weights: the data-parallel run is broken")
    tests = evaluate_on_test(s)
    test_best, test_last, test_ema = tests["best"], tests["last"], tests["ema"]
    history = s.state.history
    summary = {
        "status": "completed", "run_id": s.record.run_id, "model": s.info.name, "family": s.info.family,
        "dataset": s.cfg.dataset, "synthetic_data": s.data.synthetic, "recipe": recipe_used(s.cfg), "img_size": s.img_size,
        "params": sum(p.numel() for p in s.model.parameters()), "epochs": s.cfg.epochs, "seed": s.cfg.seed,
        "batch_size": s.cfg.batch_size, "world_size": s.ranks.world_size,
        "best_epoch": s.state.best_epoch, "best_val_top1": s.state.best_val_top1,
        "test_top1_best": test_best["top1"], "test_top5_best": test_best["top5"],
        "test_top1_last": test_last["top1"], "test_top5_last": test_last["top5"],
        **({"test_top1_ema": test_ema["top1"], "test_top5_ema": test_ema["top5"]} if test_ema else {}),
        "wall_time_s": s.state.elapsed_s,
        "process_time_s": time.perf_counter() - started,  # this session, data loading and set-up included
        "train_images_per_s": float(np.median([r["images_per_s"] for r in history])) if history else 0.0,
        **s.fast_path.record(),
        **environment(s.device),
    }
    if s.ranks.is_main:
        write_final_outputs(s, summary)
    s.say(f"test top-1 {test_best['top1']:.2f}% at the best epoch ({s.state.best_epoch}), "
          f"{test_last['top1']:.2f}% at the last; results in {s.record.folder}")
    return summary


def run(cfg: Config) -> dict[str, Any]:
    """Train cfg.model on cfg.dataset and return the run's summary."""
    started = time.perf_counter()
    try:
        session = setup(cfg)
        with checkpoint.FolderLock(session.checkpoints) if session.writes_checkpoints else contextlib.nullcontext():
            open_outputs(session)
            try:
                fit(session)
                return finish(session, started)
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (harness.errors.Terminated)
                write_status(session, "interrupted", f"stopped after epoch {session.state.epoch}")
                raise
            except TrainingDiverged:
                raise  # its summary is written
            except Exception as err:
                write_status(session, "failed", f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}")
                raise
    finally:
        shutdown()
