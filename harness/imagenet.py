"""ImageNet-style folders (train/<class>/*.jpg, val/<class>/*.jpg) through a DataLoader.

Two paths produce the same batches:
- GPU decode (on CUDA by default): workers only read JPEG bytes; the batch is decoded on the GPU with
  ``torchvision.io.decode_jpeg(device='cuda')``, then cropped, resized and flipped there.
- CPU fallback: workers decode and crop; the main process copies uint8 batches with non-blocking
  transfers from pinned memory.
Random-resized-crop boxes and flips come from a generator seeded by (seed, epoch, sample index), so an
epoch's augmentation does not depend on the path, the number of workers or which worker got a sample.
The recipe's batch operations (RandAugment, random erasing: harness.augment) then run on the device batch.
Evaluation resizes the shorter side to size/0.875 and takes the centre crop (the standard 224/256).
"""
from __future__ import annotations

import math
import stat
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from harness.errors import UsageError
from harness.pixels import Normalise

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".JPEG", ".JPG")
EVAL_CROP_FRACTION = 0.875


def scan_folder(root: Path, classes: list[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, class index) for every JPEG under root/<class>/, classes in sorted order; given ``classes``
    (the training folder's), every class folder of ``root`` must be one of them and keeps its index."""
    if not root.is_dir():
        raise UsageError(f"{root} does not exist: ImageNet needs train/ and val/ folders with one sub-folder "
                         f"per class under --data-dir")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes is not None:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise UsageError(f"{root} has class folders that the training folder lacks ({', '.join(unknown[:3])}): "
                             f"both must hold the same classes")
    index_of = {name: i for i, name in enumerate(classes if classes is not None else found)}
    samples = [(path, index_of[name]) for name in found
               for path in sorted((root / name).iterdir()) if path.suffix in IMAGE_SUFFIXES]
    if not samples:
        raise UsageError(f"{root} holds no JPEG files in class sub-folders (expected {root}/<class>/<image>.jpg)")
    return samples, found if classes is None else classes


def jpeg_problem(path: Path) -> str | None:
    """What is wrong with a JPEG file at a glance (its start and end markers), or None; no decoding."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        with open(path, "rb") as handle:
            head = handle.read(3)
            handle.seek(max(0, info.st_size - 64))
            tail = handle.read()
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if head != b"\xff\xd8\xff":
        return "not a JPEG (no start-of-image marker)"
    if b"\xff\xd9" not in tail:
        return "truncated (no end-of-image marker)"
    return None


def readable_jpegs(samples: list[tuple[Path, int]], skip_corrupt: bool) -> tuple[list[tuple[Path, int]], int]:
    """The samples whose files look like whole JPEGs, and how many were skipped; without ``skip_corrupt`` the
    first bad file stops the run, named, before training."""
    kept = []
    for path, label in samples:
        problem = jpeg_problem(path)
        if problem is None:
            kept.append((path, label))
        elif not skip_corrupt:
            raise UsageError(f"image {path} is {problem}: replace or delete it, or pass --skip-corrupt=true "
                             f"to skip such files")
    if not kept:
        raise UsageError(f"none of the {len(samples)} images under {samples[0][0].parent.parent} is a readable JPEG")
    return kept, len(samples) - len(kept)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)


def random_resized_box(height: int, width: int, gen: torch.Generator, scale=(0.08, 1.0),
                       ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop covering a random area fraction and aspect ratio (Szegedy et al. 2015)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        draws = torch.rand(4, generator=gen).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * draws[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draws[1])
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(draws[2] * (height - h + 1)), int(draws[3] * (width - w + 1)), h, w
    side = min(height, width)  # fall back to the central square
    return (height - side) // 2, (width - side) // 2, side, side


def center_box(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """The centre crop after resizing the shorter side to size / 0.875, in original pixel units."""
    side = round(min(height, width) * EVAL_CROP_FRACTION)
    return (height - side) // 2, (width - side) // 2, side, side


def crop_resize(image: torch.Tensor, box: tuple[int, int, int, int], size: int, flip: bool) -> torch.Tensor:
    """Crop a (C, H, W) uint8 image to box, resize to size×size (bilinear, antialiased), optionally mirror."""
    top, left, h, w = box
    patch = image[:, top:top + h, left:left + w].unsqueeze(0).float()
    patch = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    patch = patch.round_().clamp_(0, 255).to(torch.uint8)
    return patch.flip(-1) if flip else patch


def augment(image: torch.Tensor, size: int, train: bool, gen: torch.Generator) -> torch.Tensor:
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    height, width = image.shape[-2:]
    if not train:
        return crop_resize(image, center_box(height, width, size), size, flip=False)
    box = random_resized_box(height, width, gen)
    return crop_resize(image, box, size, flip=bool(torch.rand(1, generator=gen).item() < 0.5))


def decode(data: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec; it still works
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def read_bytes(path: Path) -> torch.Tensor:
    from torchvision.io import read_file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return read_file(str(path))


class EpochSampler(Sampler):
    """Yields (index, epoch): this rank's share of a (seed, epoch)-seeded permutation, or of the plain order."""

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.shuffle, self.rank, self.world_size = n, seed, shuffle, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The next pass yields ``epoch``'s indices from the ``skip``-th on (len stays the whole epoch's)."""
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
            per_rank = self.n // self.world_size
            return order[self.rank * per_rank:(self.rank + 1) * per_rank].tolist()
        per_rank = -(-self.n // self.world_size)
        return list(range(self.rank * per_rank, min(self.n, (self.rank + 1) * per_rank)))

    def __iter__(self):
        return iter([(i, self.epoch) for i in self._indices()[self.skip:]])

    def __len__(self) -> int:
        return len(self._indices())


class JpegFolder(Dataset):
    """Items are (JPEG bytes, label, generator seed) for GPU decoding, or (uint8 image, label) decoded here."""

    def __init__(self, samples: list[tuple[Path, int]], size: int, train: bool, seed: int, decode_here: bool):
        self.samples, self.size, self.train, self.seed, self.decode_here = samples, size, train, seed, decode_here

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int]):
        index, epoch = item
        path, label = self.samples[index]
        data = read_bytes(path)
        if not self.decode_here:
            return data, label, (index, epoch)
        return augment(decode(data), self.size, self.train, sample_generator(self.seed, epoch, index)), label


def _collate_bytes(batch):
    return [b[0] for b in batch], torch.tensor([b[1] for b in batch]), [b[2] for b in batch]


class FolderStream:
    """Batches of an image folder for one epoch, as normalised float tensors on ``device``."""

    def __init__(self, samples, batch_size: int, img_size: int, mean_std, train: bool, device: torch.device,
                 seed: int = 0, workers: int = 4, gpu_decode: bool | None = None, rank: int = 0, world_size: int = 1,
                 augment=None):
        self.device, self.train, self.img_size, self.seed = device, train, img_size, seed
        self.augment = augment if train else None  # the recipe's uint8 batch operations (harness.augment)
        self.gpu_decode = device.type == "cuda" if gpu_decode is None else gpu_decode
        self.sampler = EpochSampler(len(samples), seed, shuffle=train, rank=rank, world_size=world_size)
        dataset = JpegFolder(samples, img_size, train, seed, decode_here=not self.gpu_decode)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, num_workers=workers,
                                 pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                                 drop_last=train, collate_fn=_collate_bytes if self.gpu_decode else None)
        self.normalise = Normalise(mean_std, device)
        self.memory_format = torch.contiguous_format  # Streams.use_channels_last switches it

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int, start_step: int = 0):
        """The epoch's batches from batch ``start_step`` on (each image's augmentation depends only on the seed,
        the epoch and the image, so skipped batches need no drawing)."""
        self.sampler.set_epoch(epoch, start_step * self.loader.batch_size)
        for batch in self.loader:
            if self.gpu_decode:
                blobs, labels, keys = batch
                images = decode(blobs, device=str(self.device))
                images = torch.stack([augment(img, self.img_size, self.train, sample_generator(self.seed, e, i))
                                      for img, (i, e) in zip(images, keys)])
            else:
                images, labels = batch
                images = images.to(self.device, non_blocking=True)
            if self.augment is not None:
                images = self.augment(images)
            x = self.normalise(images)
            yield x.contiguous(memory_format=self.memory_format), labels.to(self.device, non_blocking=True)
