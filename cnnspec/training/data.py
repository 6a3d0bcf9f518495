"""Datasets as whole uint8 tensors, and their life on the training device.

- Fashion-MNIST from its original IDX `.gz` files, looked for only in `--data-dir` or
  `$CNNSPEC_DATA` when one is given, else in `/usr/share/datasets/fashion-mnist` (Debian's
  `dataset-fashion-mnist`), then the user cache folder. Damaged files are named, never
  inflated beyond what their header declares.
- A folder of images, one sub-folder per class.
- Character strips for multi-head models: 1 to 6 Fashion-MNIST items side by side in a
  3x64x128 image, one label per position, 10 meaning "no item".

On the device (`on_device`), a split is kept at its stored size and served in batches:
gathered by index, resized to the training size, scaled to [0, 1], cropped and flipped
when augmenting, in channels_last when asked.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
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
CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
NO_ITEM = 10  # the "nothing here" label of a strip position
IGNORE = 255  # a mask's value for a pixel no class is scored on (Pascal VOC's borders)


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
    """Where Fashion-MNIST is looked for: a folder the user names (the flag, else
    $CNNSPEC_DATA) and nowhere else; otherwise the system's and the user's usual places."""
    if data_dir:
        return [Path(data_dir)]
    if os.environ.get("CNNSPEC_DATA"):
        return [Path(os.environ["CNNSPEC_DATA"])]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return [DEBIAN_DIR, cache / "cnnspec" / "fashion-mnist"]


# How to get the data, said whenever it is not found.
GET_IT = (
    "install it with `apt-get install dataset-fashion-mnist` (Debian, Ubuntu), or put its four "
    f"IDX files ({', '.join(FILES.values())}) in one folder and name it with --data-dir or "
    "CNNSPEC_DATA"
)


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path:
    places = search_path(data_dir)
    for place in places:
        if all((place / name).is_file() for name in FILES.values()):
            return place
    if data_dir or os.environ.get("CNNSPEC_DATA"):  # named by the user: say what is wrong
        place = places[0]
        named = f"{place} ({'--data-dir' if data_dir else 'CNNSPEC_DATA'})"
        if not place.exists():
            raise DataError(f"Fashion-MNIST: {named} does not exist; {GET_IT}")
        if not place.is_dir():
            raise DataError(f"Fashion-MNIST: {named} is not a folder; {GET_IT}")
        missing = [name for name in FILES.values() if not (place / name).is_file()]
        raise DataError(
            f"Fashion-MNIST not found in {named}: it lacks {', '.join(missing)}; {GET_IT}"
        )
    looked = ", ".join(str(p) for p in places)
    raise DataError(f"Fashion-MNIST not found (looked in {looked}); {GET_IT}")


# deflate cannot shrink data more than 1032:1, so a header declaring more than this many
# bytes per compressed byte is a lie, refused before anything is inflated
MAX_INFLATION = 1032


def read_idx(path: Path, ndim: int | None = None) -> torch.Tensor:
    """An IDX file (optionally gzipped) as a uint8 tensor of its declared shape (with
    `ndim` dimensions, if given). The header's sizes are checked against the file's before
    the body is read, and no more than the declared body is ever inflated."""
    try:
        stored = path.stat().st_size
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            zero, dtype, dims = struct.unpack(">HBB", _read_exactly(f, 4))
            if zero != 0 or dtype != 0x08:
                raise ValueError("not an unsigned-byte IDX file")
            if ndim is not None and dims != ndim:
                raise ValueError(f"expected {ndim} dimension(s), the header declares {dims}")
            shape = struct.unpack(f">{dims}I", _read_exactly(f, 4 * dims))
            count = math.prod(shape)
            limit = stored * MAX_INFLATION if opener is gzip.open else stored
            if 4 + 4 * dims + count > limit:
                raise ValueError(
                    f"the header declares {count:,} values, more than the "
                    f"{stored:,}-byte file can hold"
                )
            body = f.read(count)
            if len(body) != count:
                raise ValueError(f"expected {count} values, found {len(body)}")
            if f.read(1):
                raise ValueError(f"more data than the {count} values the header declares")
    except (OSError, EOFError, ValueError, struct.error, zlib.error) as err:
        raise DataError(f"{path}: cannot read IDX data ({err})") from None
    if not body:  # frombuffer refuses an empty buffer
        return torch.zeros(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def _read_exactly(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError("the header is cut short")
    return data


def fashion_mnist(data_dir: str | os.PathLike | None = None) -> Dataset:
    root = find_fashion_mnist(data_dir)
    splits = []
    for split in ("train", "test"):
        images_file, labels_file = root / FILES[f"{split}_images"], root / FILES[f"{split}_labels"]
        images, labels = read_idx(images_file, ndim=3), read_idx(labels_file, ndim=1)
        _check_split(images, labels, images_file, labels_file)
        splits.append(Split(images.unsqueeze(1), labels.long()))
    return Dataset("fashion-mnist", *splits, CLASSES)


def _check_split(
    images: torch.Tensor, labels: torch.Tensor, images_file: Path, labels_file: Path
) -> None:
    """What the trainer relies on: some images, each with a label of a known class."""
    if len(images) == 0:
        raise DataError(f"{images_file}: holds no images")
    if 0 in images.shape[1:]:
        raise DataError(f"{images_file}: images of size {images.shape[1]}x{images.shape[2]}")
    if len(images) != len(labels):
        raise DataError(
            f"{labels_file}: {len(labels):,} labels for the {len(images):,} "
            f"images of {images_file.name}"
        )
    if int(labels.max()) >= len(CLASSES):
        raise DataError(
            f"{labels_file}: label {int(labels.max())} found; Fashion-MNIST's "
            f"are 0 to {len(CLASSES) - 1}"
        )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGES_LAYOUT = (
    "--images wants one sub-folder per class, named as the class, holding its images "
    f"({', '.join(IMAGE_SUFFIXES)})"
)


def held_out(count: int, fraction: float, folder: Path, flag: str) -> int:
    """How many of `count` images are held out for testing: a `fraction` of them, at least
    one, and at least one left to train on."""
    n_test = max(1, int(count * fraction))
    if count - n_test < 1:
        raise DataError(
            f"{folder} ({flag}) holds {count} image{'s' * (count != 1)}; training needs two "
            f"or more, as {n_test} {'is' if n_test == 1 else 'are'} held out for testing"
        )
    return n_test


def image_folder(
    root: str | os.PathLike,
    size: tuple[int, int],
    channels: int,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Images in `root/<class>/*`, resized to `size`; a seeded share held out for testing."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import resize

    root = Path(root)
    if not root.exists():
        raise DataError(f"{root} (--images) does not exist; {IMAGES_LAYOUT}")
    if not root.is_dir():
        raise DataError(f"{root} (--images) is not a folder; {IMAGES_LAYOUT}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root} (--images) holds no sub-folder; {IMAGES_LAYOUT}")
    mode = "RGB" if channels == 3 else "L"
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
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
        raise DataError(f"{root} (--images): no images found; {IMAGES_LAYOUT}")
    n_test = held_out(len(images), test_fraction, root, "--images")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    x, y = torch.stack(images)[order], torch.tensor(labels)[order]
    return Dataset(
        root.name, Split(x[n_test:], y[n_test:]), Split(x[:n_test], y[:n_test]), tuple(classes)
    )


def strips(
    split: Split, heads: int = 6, seed: int = 0, height: int = 64, width: int = 128
) -> Split:
    """Compose 1..`heads` items side by side into 3 x height x width strips.

    Each item is shrunk to fit `heads` slots across and centred vertically; positions
    without an item are black and labelled NO_ITEM. Vectorised; deterministic per seed."""
    from torch.nn.functional import interpolate

    g = torch.Generator().manual_seed(seed)
    n = len(split)
    side = min(width // heads, height)
    items = interpolate(
        split.images.float(),
        size=(side, side),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )
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
    """A split on the training device, at its native size, served in batches at the
    training size. Each batch is resized as it is drawn: holding a whole resized set would
    cost N x H x W bytes (60,000 images at 224x224: 3 GB, and twice that while resizing),
    while resizing 128 images costs little beside a step of a network that wants 224x224."""

    images: torch.Tensor  # uint8, N x C x h x w, as stored
    labels: torch.Tensor
    size: tuple[int, int] | None = None  # the training size; None keeps the stored one
    channels_last: bool = False

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(
        self, index: torch.Tensor, augment: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images `index` as floats in [0, 1] at the training size (randomly cropped and
        flipped with `augment`), and their labels."""
        x = self.images[index]
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = resized_levels(x, self.size)
        else:
            x = x.float()
        x = x.div_(255)
        y = self.labels[index]
        if y.dim() == 3:  # a class per pixel, kept as uint8
            y = y.long()
        if augment is not None:
            x, y = crop_and_flip(x, augment, y)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y


def on_device(
    split: Split, size: tuple[int, int] | None, device: torch.device, channels_last: bool = False
) -> DeviceSplit:
    """Move a split to the device, to be served at `size`."""
    split = split.to(device)
    return DeviceSplit(
        split.images,
        split.labels,
        tuple(size) if size else None,
        channels_last and split.images.dim() == 4,
    )


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 images resized as PIL resizes them: bilinear, antialiased, rounded."""
    return resized_levels(images, size).to(torch.uint8)


def resized_levels(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`resize`'s result as floats (whole numbers 0 to 255), so that a batch need not go
    back to uint8 before it is scaled; each image is resized alone, so a batch gets exactly
    what resizing the whole set would have given it."""
    out = F.interpolate(
        images.float(), size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return out.round_().clamp_(0, 255)


def crop_and_flip(
    x: torch.Tensor, gen: torch.Generator, y: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A random crop of each image padded by 4 pixels, and a horizontal flip half the time;
    a map of labels (`y`, N x H x W) goes through the same crop and flip, its padding
    ignored."""
    n, _, h, w = x.shape
    dy = torch.randint(0, 9, (n,), device=x.device, generator=gen)
    dx = torch.randint(0, 9, (n,), device=x.device, generator=gen)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    flip = torch.rand(n, device=x.device, generator=gen) < 0.5

    def moved(t: torch.Tensor, channels, fill: int) -> torch.Tensor:
        out = F.pad(t, (4, 4, 4, 4), value=fill)[batch, channels, rows, cols]
        return torch.where(flip[:, None, None, None], out.flip(-1), out)

    if y is not None and y.dim() == 3:
        y = moved(y[:, None], torch.zeros_like(chans[:, :1]), IGNORE)[:, 0]
    return moved(x, chans, 0), y
