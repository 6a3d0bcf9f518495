"""Images with a class per pixel (`--images DIR --masks DIR`), for networks that give a map
of class scores: U-Net, FCN, DeepLab.

Each image in the images folder has a mask of the same name (any image suffix) in the
masks folder, of the same width and height, whose pixel values are class indices (a
grayscale or palette image, as Pascal VOC's); 255 marks a pixel to ignore, as VOC's
borders. Images are resized to the training size (bilinear, antialiased), masks to it by
nearest neighbour (a class is never blended into another), then cut to the size of the
network's map around its centre: a network without padding (the paper's U-Net) scores
the middle of its input.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .data import IGNORE, IMAGE_SUFFIXES, DataError, Dataset, Split, held_out

MASKS_LAYOUT = (
    "--masks wants, for each image of --images, a mask of the same name whose pixels are "
    f"class indices (a grayscale or palette image; {IGNORE} marks pixels to ignore)"
)


def mask_folder(
    images: str | Path,
    masks: str | Path,
    size: tuple[int, int],
    out_size: tuple[int, int],
    channels: int,
    classes: int,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Pairs of image and mask, the images at `size`, the masks at the network's
    `out_size`; a seeded share held out for testing."""
    images, masks = Path(images), Path(masks)
    if classes > IGNORE:
        raise DataError(
            f"masks hold class indices up to {IGNORE - 1} ({IGNORE} marks pixels to ignore), "
            f"but the network scores {classes} classes per pixel"
        )
    if any(o > s for o, s in zip(out_size, size)):
        raise DataError(
            f"the network gives a {'x'.join(map(str, out_size))} map of "
            f"{'x'.join(map(str, size))} images; masks are cut to the map, which must not "
            "be larger than the image"
        )
    for folder, flag in ((images, "--images"), (masks, "--masks")):
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise DataError(f"{folder} ({flag}) {what}; {MASKS_LAYOUT}")
    by_stem: dict[str, Path] = {}
    for path in _image_files(masks):
        if path.stem in by_stem:
            raise DataError(
                f"{by_stem[path.stem]} and {path.name} are both masks of the image "
                f"'{path.stem}'; keep one"
            )
        by_stem[path.stem] = path
    pairs = []
    for path in _image_files(images):
        if path.stem not in by_stem:
            raise DataError(f"{path} has no mask in {masks}; {MASKS_LAYOUT}")
        pairs.append((path, by_stem[path.stem]))
    if not pairs:
        raise DataError(f"{images} (--images) holds no images; {MASKS_LAYOUT}")
    n_test = held_out(len(pairs), test_fraction, images, "--images")
    x = torch.stack([_image(path, channels, size) for path, _ in pairs])
    y = torch.stack([_mask(mask, image, classes, size, out_size) for image, mask in pairs])
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    names = tuple(str(k) for k in range(classes))
    return Dataset(images.name, Split(x[n_test:], y[n_test:]), Split(x[:n_test], y[:n_test]), names)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _pixels(path: Path, mode: str | None):
    """The file's pixels as an array (converted to `mode` where given), its mode and its
    format."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as file:
            return np.array(file.convert(mode) if mode else file), file.mode, file.format
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: cannot decode image ({err})") from None


def _image(path: Path, channels: int, size: tuple[int, int]) -> torch.Tensor:
    from torchvision.transforms.v2.functional import resize

    pixels, _, _ = _pixels(path, "RGB" if channels == 3 else "L")
    image = torch.from_numpy(pixels).reshape(*pixels.shape[:2], -1).permute(2, 0, 1)
    return resize(image, list(size), antialias=True)


def _mask(
    path: Path, image: Path, classes: int, size: tuple[int, int], out_size: tuple[int, int]
) -> torch.Tensor:
    """The mask as class indices (uint8) at `out_size`: resized to `size` by nearest
    neighbour, then its centre cut out."""
    import numpy as np

    pixels, mode, format = _pixels(path, None)
    if format == "JPEG":  # compression blends neighbouring classes along every edge
        raise DataError(
            f"{path}: a JPEG mask holds classes blurred into each other at their edges; "
            "save masks losslessly (PNG)"
        )
    if pixels.ndim != 2 or mode not in ("L", "P", "I", "I;16", "1"):
        raise DataError(
            f"{path}: a mask holds one class index per pixel (a grayscale or palette image), "
            f"but this one is {mode}"
        )
    shown, _, _ = _pixels(image, None)
    if pixels.shape[:2] != shown.shape[:2]:
        raise DataError(
            f"{path} is {pixels.shape[1]}x{pixels.shape[0]} but its image {image.name} is "
            f"{shown.shape[1]}x{shown.shape[0]} (width x height); a mask covers its image"
        )
    values = np.unique(pixels)
    wrong = [int(v) for v in values if (v < 0 or v >= classes) and v != IGNORE]
    if wrong:
        raise DataError(
            f"{path} holds class {wrong[0]}, but the network scores {classes} classes per "
            f"pixel (0 to {classes - 1}; {IGNORE} marks pixels to ignore)"
        )
    mask = torch.from_numpy(pixels.astype(np.uint8))
    (h, w), (top, left) = size, ((s - o) // 2 for s, o in zip(size, out_size))
    rows = _nearest(mask.shape[0], h)[top : top + out_size[0]]
    cols = _nearest(mask.shape[1], w)[left : left + out_size[1]]
    return mask[rows][:, cols]


def _nearest(stored: int, wanted: int) -> torch.Tensor:
    """For each of `wanted` positions, the stored one whose centre is nearest its own."""
    centres = (torch.arange(wanted, dtype=torch.float64) + 0.5) * stored / wanted
    return centres.floor().long().clamp_(max=stored - 1)
