"""Datasets: small ones as uint8 tensors on the training device, ImageNet as a folder DataLoader.

Small datasets (digits, the MNIST family, CIFAR, synthetic) are read once into uint8 (N, C, H, W)
tensors that live on the training device; batches are cut, augmented (random crop with padding,
flip), resized and normalised there, whole-batch at a time, with no per-image Python.

Every split is a ``Split``; a ``BatchStream`` turns a split into batches for one epoch. The order
and the augmentation of epoch e depend only on (seed, e), so a resumed run sees the same batches.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.augment import build_batch_augment
from harness.config import Config
from harness.distributed import Dist
from harness.errors import UsageError
from harness.pixels import Normalise

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_DATA_DIR = Path("data")
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

CLASS_COUNTS = {"cifar100": 100}   # every other tensor dataset has 10
# Per-channel mean and std of the training images, in [0, 1] units.
NORMALISATION = {
    "digits": ((0.3071,), (0.3883,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "synthetic": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
_NUMERALS = tuple(str(i) for i in range(10))
# Label index → name, as the datasets' own documentation names them (CIFAR-100's come from its meta file).
CLASS_NAMES = {
    "digits": _NUMERALS, "mnist": _NUMERALS, "synthetic": _NUMERALS,
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


@dataclass
class Split:
    images: torch.Tensor   # uint8 (N, C, H, W)
    labels: torch.Tensor   # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class Data:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    in_chans: int
    synthetic: bool = False


# ---------------------------------------------------------------- readers


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not; a clear error when it is damaged."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        if data.size != int(np.prod(shape)):
            raise ValueError(f"expected {int(np.prod(shape))} values, found {data.size}")
        return data.reshape(shape)
    except (OSError, EOFError, ValueError, struct.error) as err:
        raise UsageError(f"dataset file {path} is corrupted or truncated ({err}): delete it and download it again") from None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles; allow the numpy array types they hold and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
        labels = batch.get("labels", batch.get("fine_labels"))
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(labels, dtype=np.int64)
        if len(images) != len(labels):
            raise ValueError("image and label counts differ")
        return images, labels
    except (OSError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError) as err:
        raise UsageError(f"dataset file {path} is corrupted or truncated ({err}): delete it and download it again") from None


def check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    """Every label a class index of the dataset, or a UsageError naming the file and the first bad label."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise UsageError(f"dataset file {path} holds label {int(labels[bad[0]])} at item {int(bad[0])}, outside the "
                         f"{num_classes} classes 0..{num_classes - 1}: the file is damaged; download it again")


# ---------------------------------------------------------------- datasets


def _data_dirs(cfg: Config, system_dirs: tuple[Path, ...] = ()) -> list[Path]:
    return [Path(cfg.data_dir)] if cfg.data_dir else [DEFAULT_DATA_DIR, *system_dirs]


def _find_idx(folders: list[Path], split: str) -> tuple[Path, Path] | None:
    for folder in folders:
        for name in (f"{n}.gz" for n in IDX_FILES[split]), IDX_FILES[split]:
            paths = tuple(folder / n for n in name)
            if all(p.exists() for p in paths):
                return paths
    return None


def _download_hint(what: str, folder: Path, files: list[str]) -> str:
    return (f"{what} is not on disk and could not be downloaded: put {', '.join(files)} in {folder}/ "
            f"(or pass --data-dir=FOLDER where they are)")


def load_mnist_family(cfg: Config, name: str) -> tuple[Split, Split]:
    torchvision_name = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name]
    system = (FASHION_MNIST_SYSTEM_DIR,) if name == "fashion_mnist" else ()
    roots = _data_dirs(cfg, system)
    candidates = [folder for root in roots for folder in (root, root / torchvision_name / "raw")]
    if _find_idx(candidates, "train") is None and cfg.download:
        _try_download(torchvision_name, roots[0])
    splits = []
    for split in ("train", "test"):
        paths = _find_idx(candidates, split)
        if paths is None:
            files = [f"{n}.gz" for s in IDX_FILES.values() for n in s]
            raise UsageError(_download_hint(name, roots[0] / torchvision_name / "raw", files))
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if images.ndim != 3 or labels.ndim != 1:
            raise UsageError(f"{paths[0]} and {paths[1]} are not an image file (N, H, W) and a label file (N,): "
                             f"the files are damaged or swapped")
        if len(images) != len(labels):
            raise UsageError(f"{paths[0]} and {paths[1]} hold different numbers of items: the files are damaged")
        check_labels(labels, CLASS_COUNTS.get(name, 10), paths[1])
        splits.append(Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))))
    return splits[0], splits[1]


def load_cifar(cfg: Config, name: str) -> tuple[Split, Split]:
    root = _data_dirs(cfg)[0]
    folder, train_files, test_files = {
        "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
        "cifar100": ("cifar-100-python", ["train"], ["test"]),
    }[name]
    if not (root / folder / test_files[0]).exists() and cfg.download:
        _try_download(name.upper(), root)
    splits = []
    for files in (train_files, test_files):
        missing = [f for f in files if not (root / folder / f).exists()]
        if missing:
            raise UsageError(_download_hint(name, root / folder, train_files + test_files))
        parts = [read_cifar_batch(root / folder / f) for f in files]
        for f, (_, labels) in zip(files, parts):
            check_labels(labels, CLASS_COUNTS.get(name, 10), root / folder / f)
        splits.append(Split(torch.from_numpy(np.concatenate([p[0] for p in parts])),
                            torch.from_numpy(np.concatenate([p[1] for p in parts]))))
    return splits[0], splits[1]


def cifar100_class_names(cfg: Config) -> tuple[str, ...]:
    """The fine label names from CIFAR-100's meta file (numbers when it is missing or unreadable)."""
    path = _data_dirs(cfg)[0] / "cifar-100-python" / "meta"
    try:
        with open(path, "rb") as handle:
            names = _NumpyOnlyUnpickler(handle, encoding="latin1").load()["fine_label_names"]
        if len(names) == 100 and all(isinstance(n, str) for n in names):
            return tuple(names)
    except (OSError, EOFError, KeyError, TypeError, pickle.UnpicklingError):
        pass
    return tuple(str(i) for i in range(100))


def _try_download(torchvision_name: str, root: Path) -> None:
    """Let torchvision fetch the files; failing quietly leaves the 'put these files there' error to the caller,
    and removes what the failed attempt created in ``root`` (empty folders, partial archives)."""
    import shutil

    import torchvision.datasets as tvd
    created_root = not root.exists()
    before = set() if created_root else set(root.iterdir())
    try:
        for train in (True, False):
            getattr(tvd, torchvision_name)(str(root), train=train, download=True)
    except Exception:  # noqa: BLE001 — no network, a mirror down, a partial file: all end in the same advice
        for path in ([root] if created_root else set(root.iterdir()) - before):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def load_digits_splits(test_fraction: float = 0.2) -> tuple[Split, Split]:
    """scikit-learn's digits have no test split: a fixed 20 % (seed 0, whatever the run's seed) is held out."""
    from sklearn.datasets import load_digits
    bunch = load_digits()
    images = torch.from_numpy(np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = int(round(len(labels) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Split(images[train], labels[train]), Split(images[test], labels[test])


SYNTHETIC_TEST_IMAGES = 256


def synthetic_splits(size: int, n_train: int = 1024, n_test: int = SYNTHETIC_TEST_IMAGES,
                     classes: int = 10) -> tuple[Split, Split]:
    gen = torch.Generator().manual_seed(1234)
    make = lambda n: Split(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen),  # noqa: E731
                           torch.randint(0, classes, (n,), generator=gen))
    return make(n_train), make(n_test)


def carve_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """A seeded, disjoint train/validation split of the training set."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(len(train) * fraction)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return (Split(train.images[train_idx], train.labels[train_idx]),
            Split(train.images[val_idx], train.labels[val_idx]))


def load_tensor_data(cfg: Config, img_size: int) -> Data:
    name = cfg.dataset
    if name == "digits":
        train, test = load_digits_splits()
    elif name in ("mnist", "fashion_mnist"):
        train, test = load_mnist_family(cfg, name)
    elif name in ("cifar10", "cifar100"):
        train, test = load_cifar(cfg, name)
    elif name == "synthetic":
        train, test = synthetic_splits(img_size, n_train=cfg.synthetic_images)
    else:
        raise UsageError(f"dataset '{name}' is not a tensor dataset")
    train, val = carve_validation(train, cfg.val_fraction, cfg.seed)
    num_classes = CLASS_COUNTS.get(name, 10)
    return Data(name, train, val, test, num_classes, train.images.shape[1], synthetic=name == "synthetic")


# ---------------------------------------------------------------- batches on the device


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 100_003 + epoch)


def random_crop(images: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad each side by ``padding`` and cut a random H×W window per image, for the whole batch at once."""
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device, generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device, generator=gen)
    rows = (dy + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_hflip(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], device=images.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class BatchStream:
    """Batches of one split for one epoch, prepared on the split's device.

    ``train=True`` shuffles and augments (crop, flip, the recipe's ``augment``); evaluation is deterministic. Both resize to
    ``img_size`` and normalise. ``rank``/``world_size`` give each process of a distributed run its
    own shard: of every epoch's shuffled order in training (equal shards, the remainder dropped), of
    the split in order for evaluation (every sample seen exactly once over all ranks).
    """

    def __init__(self, split: Split, batch_size: int, img_size: int, mean_std, train: bool, seed: int = 0,
                 crop_padding: int = 0, hflip: bool = False, rank: int = 0, world_size: int = 1, augment=None):
        self.split, self.batch_size, self.img_size, self.train = split, batch_size, img_size, train
        self.seed, self.crop_padding, self.hflip = seed, crop_padding, hflip
        self.augment = augment  # the recipe's uint8 batch operations (harness.augment), training only
        self.rank, self.world_size = rank, world_size
        self.memory_format = torch.contiguous_format  # Streams.use_channels_last switches it
        device = split.images.device
        self.normalise = Normalise(mean_std, device)

    def _shard(self) -> tuple[int, int]:
        n = len(self.split)
        if self.train:
            size = n // self.world_size
            return self.rank * size, size
        size = -(-n // self.world_size)
        start = min(n, self.rank * size)
        return start, min(n, start + size) - start

    def __len__(self) -> int:
        size = self._shard()[1]
        return size // self.batch_size if self.train else -(-size // self.batch_size)

    def epoch(self, epoch: int, start_step: int = 0):
        """The epoch's batches from batch ``start_step`` on. The ones before are cut and their crops and flips
        drawn, then dropped, so that the epoch's generator is where it was: a run resumed mid-epoch sees the
        batches it would have seen (the recipe's ``augment`` draws from the global RNG; its checkpoint has that)."""
        device = self.split.images.device
        gen = epoch_generator(self.seed, epoch, device)
        n = len(self.split)
        order = torch.randperm(n, device=device, generator=gen) if self.train else torch.arange(n, device=device)
        start, size = self._shard()
        order = order[start:start + size]
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            if i < start_step:
                self.crop_and_flip(self.split.images[index], gen)
                continue
            yield self.prepare(self.split.images[index], gen), self.split.labels[index]

    def crop_and_flip(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The training augmentations drawn from the epoch's generator."""
        images = random_crop(images, self.crop_padding, gen)
        return random_hflip(images, gen) if self.hflip else images

    def prepare(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.train:
            images = self.crop_and_flip(images, gen)
            if self.augment is not None:
                images = self.augment(images)
        x = images.float()
        if x.shape[-1] != self.img_size or x.shape[-2] != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.img_size)
        return self.normalise(x).contiguous(memory_format=self.memory_format)


# ---------------------------------------------------------------- the three streams of a run


@dataclass
class Streams:
    name: str
    train: "BatchStream"
    val: "BatchStream"
    test: "BatchStream"
    num_classes: int
    in_chans: int
    sizes: tuple[int, int, int]   # train / val / test sample counts
    synthetic: bool = False
    class_names: tuple[str, ...] = ()   # label index → name

    def use_channels_last(self) -> None:
        """Batches in NHWC layout, to match a channels_last model."""
        for stream in (self.train, self.val, self.test):
            stream.memory_format = torch.channels_last


def device_memory(device: torch.device) -> int:
    """Bytes of memory on ``device`` (the GPU's, or this machine's RAM)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(cfg: Config, img_size: int, device: torch.device) -> None:
    """Refuse, before anything is allocated, sizes whose data alone cannot fit in the device's memory: the
    stored synthetic images, and one batch as padded uint8 crops and as float images at the input size."""
    stored = (cfg.synthetic_images + SYNTHETIC_TEST_IMAGES) * 3 * img_size ** 2 if cfg.dataset == "synthetic" else 0
    padded = cfg.batch_size * 3 * (cfg.input_size + 2 * cfg.crop_padding) ** 2
    batch = cfg.batch_size * 3 * img_size ** 2 * 4 * 3   # float32: converted, resized, normalised
    total, available = stored + padded + batch, device_memory(device)
    if total > available:
        causes = max([(stored, "--synthetic-images"), (padded, "--crop-padding"),
                      (batch, "--img-size or --batch-size")])
        raise UsageError(f"this run's data needs about {total / 1e9:.3g} GB, more than the {available / 1e9:.3g} GB "
                         f"of {device.type} memory: lower {causes[1]}")


def open_data(cfg: Config, img_size: int, device: torch.device, ranks: Dist = Dist()) -> Streams:
    """Train, validation and test batches for ``cfg.dataset`` on ``device``, sharded over the ranks."""
    check_memory(cfg, img_size, device)
    mean_std = NORMALISATION[cfg.dataset]
    common = dict(batch_size=cfg.batch_size, img_size=img_size, mean_std=mean_std, rank=ranks.rank,
                  world_size=ranks.world_size)
    if cfg.dataset == "imagenet":
        from harness.imagenet import FolderStream, readable_jpegs, scan_folder
        root = _data_dirs(cfg)[0]
        train_samples, classes = scan_folder(root / "train")
        test_samples, _ = scan_folder(root / "val", classes)
        (train_samples, skipped_train), (test_samples, skipped_test) = (
            readable_jpegs(train_samples, cfg.skip_corrupt), readable_jpegs(test_samples, cfg.skip_corrupt))
        if (skipped_train or skipped_test) and ranks.is_main:
            print(f"note: --skip-corrupt skipped {skipped_train} training and {skipped_test} validation images "
                  f"under {root} that are not whole JPEGs")
        order = torch.randperm(len(train_samples), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        n_val = max(1, round(len(order) * cfg.val_fraction))
        pick = lambda idx: [train_samples[i] for i in idx]  # noqa: E731
        augment = build_batch_augment(cfg)
        make = lambda samples, train: FolderStream(samples, train=train, device=device, seed=cfg.seed,  # noqa: E731
                                                   workers=cfg.workers, augment=augment, **common)
        sizes = (len(order) - n_val, n_val, len(test_samples))
        streams = Streams("imagenet", make(pick(order[n_val:]), True), make(pick(order[:n_val]), False),
                          make(test_samples, False), len(classes), 3, sizes, class_names=tuple(classes))
    else:
        data = load_tensor_data(cfg, img_size)
        splits = [split.to(device) for split in (data.train, data.val, data.test)]
        streams = Streams(data.name,
                          BatchStream(splits[0], train=True, seed=cfg.seed, crop_padding=cfg.crop_padding,
                                      hflip=cfg.hflip, augment=build_batch_augment(cfg), **common),
                          BatchStream(splits[1], train=False, **common), BatchStream(splits[2], train=False, **common),
                          data.num_classes, data.in_chans, tuple(len(s) for s in splits), data.synthetic,
                          CLASS_NAMES.get(data.name) or cifar100_class_names(cfg))
    if len(streams.train) == 0:
        raise UsageError(f"batch_size {cfg.batch_size} per process is larger than the {streams.sizes[0]} training "
                         f"images of {cfg.dataset} shared by {ranks.world_size} process(es): use a smaller --batch-size")
    return streams
