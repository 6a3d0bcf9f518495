"""Training a network that gives a map of class scores on images and their masks
(`cnnspec train --images DIR --masks DIR`), on small generated data: bright squares on a
dark ground, the mask marking the square."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from cnnspec.cli import main
from cnnspec.training import data, loop
from cnnspec.training.masks import mask_folder

SEG = """\
network Seg(input=1x24x24, classes=2):
    body: conv(8, k=3, p=1) relu conv(8, k=3, p=1) relu conv(classes, k=1)
"""
# Without padding: a 20x20 map of a 24x24 image, its centre (the paper's U-Net does so).
VALID = """\
network Valid(input=1x24x24, classes=2):
    body: conv(8, k=3) relu conv(8, k=3) relu conv(classes, k=1)
"""


def squares(folder: Path, count: int = 40, size: int = 24, seed: int = 0) -> tuple[Path, Path]:
    """`count` grayscale images, each with a bright square, and their masks: 1 on the
    square, 0 elsewhere, and the top row 255 (ignored)."""
    rng = np.random.default_rng(seed)
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for i in range(count):
        image = rng.integers(0, 60, (size, size), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        y, x, s = (int(v) for v in rng.integers((2, 2, 5), (12, 12, 10)))
        image[y : y + s, x : x + s] += 150
        mask[y : y + s, x : x + s] = 1
        mask[0, :] = data.IGNORE
        Image.fromarray(image).save(images / f"{i:03d}.png")
        Image.fromarray(mask).save(masks / f"{i:03d}.png")
    return images, masks


def train(tmp_path: Path, spec_text: str, *flags: str) -> tuple[int, Path]:
    spec = tmp_path / "seg.cnn"
    spec.write_text(spec_text)
    run = tmp_path / "run"
    argv = ["train", str(spec), "--out", str(run), "--no-progress", "--lr", "0.5", *flags]
    return main(argv), run


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_segmentation_network_learns_its_masks(tmp_path):
    images, masks = squares(tmp_path)
    rc, run = train(tmp_path, SEG, "--images", str(images), "--masks", str(masks),
                    "--epochs", "15")  # fmt: skip
    assert rc == 0
    last = metrics(run)[-1]
    # a tenth of the scored pixels are square: all background would score 0.9
    assert last["test_acc"] > 0.97 and last["train_acc"] > 0.97, last
    saved = json.loads((run / "data.json").read_text())
    assert saved["masks"] == str(masks.resolve()) and saved["images"] == str(images.resolve())


def test_a_resumed_segmentation_run_reads_its_masks_from_the_run(tmp_path):
    images, masks = squares(tmp_path)
    given = ("--images", str(images), "--masks", str(masks))
    whole = tmp_path / "whole"
    whole.mkdir()
    assert train(whole, SEG, *given, "--epochs", "3")[0] == 0
    parted = tmp_path / "parted"
    parted.mkdir()
    rc, run = train(parted, SEG, *given, "--epochs", "2")
    assert rc == 0
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    assert [m["loss"] for m in metrics(run)] == [m["loss"] for m in metrics(whole / "run")]
    mine, theirs = weights(run), weights(whole / "run")
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def weights(run: Path) -> dict:
    pointer = json.loads((run / "checkpoints" / "latest.json").read_text())
    return load_file(str(run / "checkpoints" / pointer["name"] / "model.safetensors"))


def test_masks_are_cut_to_the_centre_a_network_without_padding_scores(tmp_path):
    images, masks = squares(tmp_path, count=5)
    found = mask_folder(images, masks, (24, 24), (20, 20), 1, 2, seed=0)
    every = torch.cat([found.train.labels, found.test.labels])
    assert every.shape == (5, 20, 20) and every.dtype == torch.uint8
    assert len(found.test.labels) == 1  # a fifth held out for testing
    whole = mask_folder(images, masks, (24, 24), (24, 24), 1, 2, seed=0)
    full = torch.cat([whole.train.labels, whole.test.labels])
    assert torch.equal(every, full[:, 2:22, 2:22])
    rc, run = train(tmp_path, VALID, "--images", str(images), "--masks", str(masks),
                    "--epochs", "1")  # fmt: skip
    assert rc == 0 and len(metrics(run)) == 1


def test_masks_are_resized_by_nearest_neighbour_never_blended(tmp_path):
    images, masks = squares(tmp_path, count=3)
    found = mask_folder(images, masks, (37, 37), (37, 37), 1, 2, seed=0)
    values = set(torch.cat([found.train.labels, found.test.labels]).unique().tolist())
    assert values == {0, 1, data.IGNORE}
    assert found.train.images.shape[-2:] == (37, 37)


def test_a_map_is_scored_on_its_labelled_pixels_only():
    out = torch.zeros(2, 3, 2, 2)
    out[:, 1] = 5.0  # class 1 everywhere
    y = torch.tensor([[[1, 1], [0, 255]], [[255, 255], [255, 255]]])
    loss, hits = loop._loss_and_hits(out, y, 0.0)
    # sample 1: 2 of its 3 scored pixels right; sample 2 has none scored
    assert hits.item() == pytest.approx(2 / 3)
    scored = y != 255
    expected = F.cross_entropy(out.permute(0, 2, 3, 1)[scored], y[scored])
    assert loss.item() == pytest.approx(expected.item())


def test_crops_and_flips_move_a_map_with_its_image():
    y = torch.randint(0, 3, (16, 10, 12))
    x = (y.float() + 1)[:, None].repeat(1, 3, 1, 1)  # each pixel shows its class + 1
    gen = torch.Generator().manual_seed(0)
    moved_x, moved_y = data.crop_and_flip(x, gen, y)
    padding = moved_y == data.IGNORE
    assert padding.any() and (~padding).any()
    assert torch.equal(moved_x[:, 0][~padding], moved_y[~padding].float() + 1)
    assert (moved_x[:, 0][padding] == 0).all()  # the image's padding is black


@pytest.mark.parametrize(
    "case, message",
    [
        ("no images", "--masks DIR goes with --images DIR"),
        ("no masks folder", "(--masks) does not exist"),
        ("missing mask", "003.png has no mask in"),
        ("rgb mask", "a mask holds one class index per pixel (a grayscale or palette image), "
         "but this one is RGB"),
        ("class out of range", "holds class 7, but the network scores 2 classes per pixel"),
        ("other size", "is 20x24 but its image 000.png is 24x24"),
        ("class scores", "with --masks, cnnspec train fits one map of class scores"),
        ("modern crops", "crops and flips (--recipe modern) move a map only where it is the "
         "image's size"),
        ("undecodable", "cannot decode image"),
        ("one image", "holds 1 image; training needs two or more, as 1 is held out for "
         "testing"),
        ("two masks of one image", "are both masks of the image '002'; keep one"),
        ("jpeg mask", "a JPEG mask holds classes blurred into each other at their edges"),
        ("classes disagree", "Seg declares classes=3 but gives 2 class scores per pixel"),
        ("four channels", "Seg takes 4-channel images, but images from a folder (--images) "
         "are read as 1 channel (grayscale) or 3 (RGB)"),
        ("map larger than image", "the network gives a 48x48 map of 24x24 images; masks are "
         "cut to the map, which must not be larger than the image"),
    ],
)  # fmt: skip
def test_what_masks_training_cannot_use_is_one_line_before_any_run(case, message, tmp_path, capsys):
    images, masks = squares(tmp_path, count=6)
    spec, flags = SEG, ["--images", str(images), "--masks", str(masks), "--epochs", "1"]
    if case == "no images":
        flags = flags[2:]
    elif case == "no masks folder":
        flags[3] = str(tmp_path / "nowhere")
    elif case == "missing mask":
        (masks / "003.png").unlink()
    elif case == "rgb mask":
        Image.new("RGB", (24, 24)).save(masks / "002.png")
    elif case == "class out of range":
        Image.fromarray(np.full((24, 24), 7, np.uint8)).save(masks / "004.png")
    elif case == "other size":
        Image.fromarray(np.zeros((24, 20), np.uint8)).save(masks / "000.png")
    elif case == "class scores":
        spec = "network C(input=1x24x24, classes=2):\n    body: gap flatten linear(classes)\n"
    elif case == "modern crops":
        spec, flags = VALID, [*flags, "--recipe", "modern"]
    elif case == "one image":
        for path in sorted(images.iterdir())[1:]:
            path.unlink()
    elif case == "two masks of one image":
        Image.fromarray(np.zeros((24, 24), np.uint8)).save(masks / "002.bmp")
    elif case == "jpeg mask":
        (masks / "001.png").unlink()
        Image.fromarray(np.zeros((24, 24), np.uint8)).save(masks / "001.jpg", quality=100)
    elif case == "four channels":
        spec = SEG.replace("1x24x24", "4x24x24")
    elif case == "classes disagree":
        spec = SEG.replace("classes=2", "classes=3").replace("conv(classes,", "conv(2,")
    elif case == "map larger than image":
        spec = SEG.replace("conv(classes, k=1)", "conv(classes, k=1) upsample(2)")
    elif case == "undecodable":
        (masks / "001.png").write_bytes(b"not a png")
    rc, run = train(tmp_path, spec, *flags)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 1 and message in lines[0], err
    # one line, or one and the spec's line under it, marked, where the spec is at fault
    assert len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^"), err
    assert "Traceback" not in err
    assert not run.exists()


def test_a_negative_class_in_a_32_bit_mask_is_refused(tmp_path):
    images, masks = squares(tmp_path, count=2)
    Image.fromarray(np.full((24, 24), -3, np.int32), mode="I").save(masks / "001.tiff")
    (masks / "001.png").unlink()
    with pytest.raises(data.DataError) as err:
        mask_folder(images, masks, (24, 24), (24, 24), 1, 2)
    assert "001.tiff holds class -3, but the network scores 2 classes" in err.value.message


def test_a_network_of_more_classes_than_a_mask_can_hold_is_refused(tmp_path):
    images, masks = squares(tmp_path, count=2)
    with pytest.raises(data.DataError) as err:
        mask_folder(images, masks, (24, 24), (24, 24), 1, 300)
    assert "class indices up to 254 (255 marks pixels to ignore)" in err.value.message


@pytest.mark.slow
def test_the_readmes_padded_unet_trains_on_images_and_masks(tmp_path):
    """README: `cnnspec train specs/papers/unet_padded.cnn --images ... --masks ...`, here
    on colour images of another size than the masks' training size, resized."""
    from conftest import ROOT

    rng = np.random.default_rng(1)
    images, masks = tmp_path / "photos", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(images / f"{i}.jpg")
        Image.fromarray((rng.random((48, 40)) > 0.5).astype(np.uint8)).save(masks / f"{i}.png")
    run = tmp_path / "run"
    argv = ["train", str(ROOT / "specs/papers/unet_padded.cnn"), "--images", str(images),
            "--masks", str(masks), "--resize", "32", "--epochs", "1", "--batch-size", "2",
            "--out", str(run), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((run / "recipe.json").read_text())["size"] == [32, 32]
    assert len(metrics(run)) == 1


def test_a_class_folder_of_one_image_is_refused_as_masks_are(tmp_path):
    (tmp_path / "cat").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "cat" / "a.png")
    with pytest.raises(data.DataError) as err:
        data.image_folder(tmp_path, (8, 8), 1)
    assert "holds 1 image; training needs two or more" in err.value.message
