"""Soft knowledge distillation from a model this harness trained and saved.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015), §2: the student also matches the
teacher's class probabilities softened by a temperature τ, and the gradient of that term scales as 1/τ², so it
is multiplied by τ². DeiT (Touvron et al., 2021, §5, "soft distillation") weighs it against the label loss:

    loss = (1 − α) · label loss + α · τ² · KL(softmax(t / τ) ‖ softmax(s / τ)),  averaged over the batch.

TLEG (Xia et al., AAAI 2024) trains its learngene this way under a CNN teacher. The teacher is any zoo model
saved by a run (``--teacher=<run folder | model.safetensors | best.pt | last.pt>``), frozen, in eval mode, run
under the student's autocast. It sees the student's (augmented, mixed) batch, re-normalised from the student's
dataset statistics to those the teacher was trained with and resized to its image size when they differ
(bilinear, antialiased: both maps are linear, so their order does not matter). Its classes and channels must be
the student's.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from harness.errors import UsageError


class Teacher:
    """A frozen saved model and the distillation term it adds to the label loss."""

    def __init__(self, model: nn.Module, scale: torch.Tensor, shift: torch.Tensor, img_size: int, alpha: float,
                 temperature: float):
        self.model = model.eval().requires_grad_(False)
        self.scale, self.shift = scale, shift  # student-normalised → teacher-normalised input, per channel
        self.renormalise = not (bool((scale == 1).all()) and bool((shift == 0).all()))
        self.img_size = img_size
        self.alpha = alpha
        self.temperature = temperature

    @classmethod
    def load(cls, path: str, *, mean_std, num_classes: int, in_chans: int, alpha: float, temperature: float,
             device: torch.device) -> "Teacher":
        """The teacher saved at ``path`` for a student whose batches are normalised by ``mean_std``."""
        model, _, spec = zoo.load_model(path, device)
        if (spec.num_classes, spec.in_chans) != (num_classes, in_chans):
            raise UsageError(f"--teacher={path} is a {spec.model} for {spec.num_classes} classes and {spec.in_chans} "
                             f"channel(s); this run has {num_classes} and {in_chans}: choose a teacher trained on "
                             f"this dataset")
        student_mean, student_std, teacher_mean, teacher_std = (
            torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)
            for values in (*mean_std, spec.mean, spec.std))
        # x_t = (x_s·σ_s + μ_s − μ_t) / σ_t, in [0, 1] pixel units (the 255s cancel).
        return cls(model, student_std / teacher_std, (student_mean - teacher_mean) / teacher_std, spec.img_size,
                   alpha, temperature)

    @torch.no_grad()
    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs * self.scale + self.shift if self.renormalise else inputs
        if x.shape[-2:] != (self.img_size, self.img_size):
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return self.model(x).float()

    def loss(self, label_loss: torch.Tensor, student_logits: torch.Tensor,
             teacher_logits: torch.Tensor) -> torch.Tensor:
        tau = self.temperature
        soft = F.kl_div(F.log_softmax(student_logits.float() / tau, dim=1), F.log_softmax(teacher_logits / tau, dim=1),
                        reduction="batchmean", log_target=True)
        return (1.0 - self.alpha) * label_loss + self.alpha * tau * tau * soft
