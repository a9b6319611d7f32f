import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from harness.config import build_config
from harness.data import (FASHION_MNIST_SYSTEM_DIR, BatchStream, Split, carve_validation, load_tensor_data,
                          random_crop, read_idx)
from harness.errors import UsageError


def cfg_for(**keys):
    return build_config({k: str(v) for k, v in keys.items()})


def write_idx(path, array: np.ndarray, compress=True):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def make_mnist_folder(folder, n_train=40, n_test=20, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, (n,)), compress)


def test_digits_shapes_channels_and_disjoint_splits():
    data = load_tensor_data(cfg_for(dataset="digits"), 32)
    assert data.in_chans == 1 and data.num_classes == 10
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (1, 8, 8)
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    rows = lambda s: {tuple(r.tolist()) for r in s.images.flatten(1)}  # noqa: E731
    # digits has a few duplicate images, so compare by identity of the sample index instead of content
    assert len(rows(data.val) & rows(data.test)) < 5


def test_validation_split_is_seeded_and_disjoint():
    split = Split(torch.arange(100).view(100, 1, 1, 1).to(torch.uint8), torch.arange(100))
    train_a, val_a = carve_validation(split, 0.1, seed=1)
    train_b, val_b = carve_validation(split, 0.1, seed=1)
    _, val_c = carve_validation(split, 0.1, seed=2)
    assert torch.equal(val_a.labels, val_b.labels) and not torch.equal(val_a.labels, val_c.labels)
    assert len(val_a) == 10 and set(val_a.labels.tolist()).isdisjoint(train_a.labels.tolist())


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_mnist_from_generated_idx_files(tmp_path, layout):
    make_mnist_folder(tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw", compress=layout == "flat")
    data = load_tensor_data(cfg_for(dataset="mnist", data_dir=tmp_path, download=False), 28)
    assert data.train.images.shape[1:] == (1, 28, 28) and len(data.test) == 20 and len(data.train) == 36


def test_missing_files_offline_say_which_files_where(tmp_path):
    with pytest.raises(UsageError, match=r"train-images-idx3-ubyte.gz.*in .*MNIST/raw"):
        load_tensor_data(cfg_for(dataset="mnist", data_dir=tmp_path, download=False), 28)


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    make_mnist_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.open(path).read()
    gzip.open(path, "wb").write(raw[: len(raw) // 2])
    with pytest.raises(UsageError, match="corrupted or truncated"):
        read_idx(path)


def write_cifar(root, n_per_batch=8):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n_per_batch, 3072)).astype(np.uint8),
                 "labels": rng.integers(0, 10, n_per_batch).tolist()}
        pickle.dump(batch, open(folder / name, "wb"))
    return folder


def test_cifar10_from_generated_python_batches(tmp_path):
    write_cifar(tmp_path)
    data = load_tensor_data(cfg_for(dataset="cifar10", data_dir=tmp_path, download=False), 32)
    assert data.train.images.shape[1:] == (3, 32, 32) and len(data.test) == 8 and data.in_chans == 3


def test_cifar_pickle_with_code_is_refused(tmp_path):
    folder = write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("hacked",))
    pickle.dump({"data": Evil(), "labels": []}, open(folder / "test_batch", "wb"))
    with pytest.raises(UsageError, match="corrupted or truncated"):
        load_tensor_data(cfg_for(dataset="cifar10", data_dir=tmp_path, download=False), 32)


@pytest.mark.skipif(not FASHION_MNIST_SYSTEM_DIR.exists(), reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_found_without_a_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./data here: the Debian package's folder must be found by itself
    data = load_tensor_data(cfg_for(dataset="fashion_mnist", download=False), 28)
    assert len(data.train) + len(data.val) == 60000 and len(data.test) == 10000
    assert sorted(data.test.labels.unique().tolist()) == list(range(10))


def make_stream(train, **kw):
    images = torch.arange(64 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8).view(64, 1, 8, 8)
    split = Split(images, torch.arange(64) % 10)
    return BatchStream(split, 16, kw.pop("img_size", 8), ((0.0,), (1.0,)), train=train, seed=3, **kw)


def test_epoch_order_and_augmentation_depend_only_on_seed_and_epoch():
    a, b = make_stream(True, crop_padding=2, hflip=True), make_stream(True, crop_padding=2, hflip=True)
    first = [x for x, _ in a.epoch(4)]
    assert all(torch.equal(x, y) for x, (y, _) in zip(first, b.epoch(4)))
    assert not torch.equal(first[0], next(iter(a.epoch(5)))[0])


def test_an_epoch_started_at_a_later_step_gives_the_rest_of_the_same_batches():
    """What a run resumed mid-epoch trains on: the skipped batches' crops and flips are still drawn."""
    stream = make_stream(True, crop_padding=2, hflip=True)
    whole = list(stream.epoch(4))
    rest = list(stream.epoch(4, start_step=2))
    assert len(rest) == len(whole) - 2
    assert all(torch.equal(x, x2) and torch.equal(y, y2) for (x, y), (x2, y2) in zip(whole[2:], rest))


def test_eval_stream_is_deterministic_and_complete():
    stream = make_stream(False, crop_padding=2, hflip=True)
    labels = torch.cat([y for _, y in stream.epoch(0)])
    assert torch.equal(labels, torch.arange(64) % 10)
    assert torch.equal(next(iter(stream.epoch(0)))[0], next(iter(stream.epoch(7)))[0])


def test_random_crop_shifts_within_padding():
    images = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(50, 1, 1, 1)
    out = random_crop(images, 1, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    for sample in out:
        nonzero = sample[sample > 0]
        assert len(nonzero) >= 8  # at most one row and one column fall off
    assert len({tuple(s.flatten().tolist()) for s in out}) > 3  # different offsets per image


def test_resize_to_model_size():
    x, _ = next(iter(make_stream(True, img_size=32).epoch(0)))
    assert x.shape == (16, 1, 32, 32) and x.dtype == torch.float32
