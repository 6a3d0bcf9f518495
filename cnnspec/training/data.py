"""Datasets as whole uint8 tensors, and their life on the training device.

- Fashion-MNIST from its original IDX `.gz` files, looked for in `--data-dir`, then
  `$CNNSPEC_DATA`, then `/usr/share/datasets/fashion-mnist` (Debian's
  `dataset-fashion-mnist`), then the user cache folder.
- A folder of images, one sub-folder per class.
- Character strips for multi-head models: 1 to 6 Fashion-MNIST items side by side in a
  3x64x128 image, one label per position, 10 meaning "no item".

On the device (`on_device`), a split is served in batches: gathered by index, scaled to
[0, 1], cropped and flipped when augmenting, in channels_last when asked.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import CnnspecError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle boot")  # fmt: skip
NO_ITEM = 10  # the "nothing here" label of a strip position


class DataError(CnnspecError):
    """Training data is missing or unreadable."""


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N (one head) or N x heads

    def __len__(self) -> int:
        return self.images.shape[0]

    def limit(self, n: int | None) -> Split:
        return self if n is None else Split(self.images[:n], self.labels[:n])

    def to(self, device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    classes: tuple[str, ...]

    def limit(self, train: int | None, test: int | None) -> Dataset:
        """The first `train` and `test` images of each split (None: all of them)."""
        return Dataset(self.name, self.train.limit(train), self.test.limit(test), self.classes)


def search_path(data_dir: str | os.PathLike | None = None) -> list[Path]:
    places = []
    if data_dir:
        places.append(Path(data_dir))
    if os.environ.get("CNNSPEC_DATA"):
        places.append(Path(os.environ["CNNSPEC_DATA"]))
    places.append(DEBIAN_DIR)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    places.append(cache / "cnnspec" / "fashion-mnist")
    return places


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path:
    places = search_path(data_dir)
    for place in places:
        if all((place / name).is_file() for name in FILES.values()):
            return place
    looked = ", ".join(str(p) for p in places)
    raise DataError(
        f"Fashion-MNIST not found (looked in {looked}); install it with "
        "`apt-get install dataset-fashion-mnist`, or put the four IDX .gz files in a folder "
        "and pass --data-dir or set CNNSPEC_DATA"
    )


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (optionally gzipped) as a uint8 tensor of its declared shape."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        body = data[4 + 4 * ndim :]
        count = 1
        for d in shape:
            count *= d
        if len(body) != count:
            raise ValueError(f"expected {count} values, found {len(body)}")
    except (OSError, EOFError, ValueError, struct.error) as err:
        raise DataError(f"{path}: cannot read IDX data ({err})") from None
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def fashion_mnist(data_dir: str | os.PathLike | None = None) -> Dataset:
    root = find_fashion_mnist(data_dir)
    t = {key: read_idx(root / name) for key, name in FILES.items()}
    return Dataset(
        "fashion-mnist",
        Split(t["train_images"].unsqueeze(1), t["train_labels"].long()),
        Split(t["test_images"].unsqueeze(1), t["test_labels"].long()),
        CLASSES,
    )


def image_folder(root: str | os.PathLike, size: tuple[int, int], channels: int,
                 test_fraction: float = 0.2, seed: int = 0) -> Dataset:  # fmt: skip
    """Images in `root/<class>/*`, resized to `size`; a seeded share held out for testing."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import resize

    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DataError(f"{root}: expected one sub-folder of images per class")
    mode = "RGB" if channels == 3 else "L"
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
                continue
            try:
                with Image.open(path) as file:
                    pixels = np.array(file.convert(mode), dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as err:
                raise DataError(f"{path}: cannot decode image ({err})") from None
            image = torch.from_numpy(pixels).reshape(*pixels.shape[:2], -1).permute(2, 0, 1)
            images.append(resize(image, list(size), antialias=True))
            labels.append(label)
    if not images:
        raise DataError(f"{root}: no images found")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    x, y = torch.stack(images)[order], torch.tensor(labels)[order]
    n_test = max(1, int(len(images) * test_fraction))
    return Dataset(root.name, Split(x[n_test:], y[n_test:]), Split(x[:n_test], y[:n_test]),
                   tuple(classes))  # fmt: skip


def strips(split: Split, heads: int = 6, seed: int = 0, height: int = 64,
           width: int = 128) -> Split:  # fmt: skip
    """Compose 1..`heads` items side by side into 3 x height x width strips.

    Each item is shrunk to fit `heads` slots across and centred vertically; positions
    without an item are black and labelled NO_ITEM. Vectorised; deterministic per seed."""
    from torch.nn.functional import interpolate

    g = torch.Generator().manual_seed(seed)
    n = len(split)
    side = min(width // heads, height)
    items = interpolate(split.images.float(), size=(side, side), mode="bilinear",
                        antialias=True, align_corners=False)  # fmt: skip
    items = items.round().clamp(0, 255).to(torch.uint8)[:, 0]
    count = torch.randint(1, heads + 1, (n,), generator=g)
    picks = torch.randint(0, n, (n, heads), generator=g)
    present = torch.arange(heads).unsqueeze(0) < count.unsqueeze(1)  # n x heads
    labels = torch.where(present, split.labels[picks], torch.full_like(picks, NO_ITEM))
    canvas = torch.zeros(n, height, width, dtype=torch.uint8)
    top = (height - side) // 2
    for slot in range(heads):  # six slices, not a loop over samples
        patch = items[picks[:, slot]] * present[:, slot, None, None]
        canvas[:, top : top + side, slot * side : (slot + 1) * side] = patch
    return Split(canvas.unsqueeze(1).expand(n, 3, height, width).contiguous(), labels)


# --- on the training device -------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceSplit:
    """A split on the training device, at the training size, served in batches."""

    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor
    channels_last: bool = False

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, index: torch.Tensor, augment: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Images `index` as floats in [0, 1] (randomly cropped and flipped with `augment`),
        and their labels."""
        x = self.images[index].float().div_(255)
        if augment is not None:
            x = crop_and_flip(x, augment)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[index]


def on_device(split: Split, size: tuple[int, int] | None, device: torch.device,
              channels_last: bool = False) -> DeviceSplit:  # fmt: skip
    """Move a split to the device and resize it there, once, back to uint8 (bilinear,
    antialiased, rounded as PIL's resize rounds)."""
    split = split.to(device)
    images = split.images
    if size is not None and tuple(images.shape[-2:]) != tuple(size):
        images = torch.cat([resize(chunk, size) for chunk in images.split(4096)])
    return DeviceSplit(images, split.labels, channels_last and images.dim() == 4)


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 images resized as PIL resizes them: bilinear, antialiased, rounded."""
    out = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True,
                        align_corners=False)  # fmt: skip
    return out.round_().clamp_(0, 255).to(torch.uint8)


def crop_and_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random crop of each image padded by 4 pixels, and a horizontal flip half the time."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), device=x.device, generator=gen)
    dx = torch.randint(0, 9, (n,), device=x.device, generator=gen)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    flip = torch.rand(n, device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)
