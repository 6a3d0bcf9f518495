"""The torchvision classification models that specs/zoo/ writes as specs.

Each spec is named after its torchvision builder. `size` is the input height and width the
forward comparisons run at: small, to keep them fast, and possible because every one of
these models ends in adaptive pooling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "specs" / "zoo"


@dataclass(frozen=True)
class ZooModel:
    name: str
    size: int = 64
    kwargs: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return ZOO / f"{self.name}.cnn"

    def torchvision(self):
        """torchvision's own model, randomly initialised (no pretrained weights)."""
        import torchvision

        return getattr(torchvision.models, self.name)(weights=None, **self.kwargs)


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel("resnet18"),
        ZooModel("resnet50"),
        ZooModel("resnext50_32x4d"),
        ZooModel("wide_resnet50_2"),
        ZooModel("vgg11"),
        ZooModel("vgg16_bn"),
        ZooModel("alexnet"),
        # init_weights=True is what torchvision picks when it is not given, with a warning.
        ZooModel(
            "googlenet",
            kwargs={"aux_logits": False, "transform_input": False, "init_weights": True},
        ),
        ZooModel("densenet121"),
        ZooModel("squeezenet1_0"),
        ZooModel("squeezenet1_1"),
        ZooModel("mobilenet_v2"),
        ZooModel("regnet_x_400mf"),
        ZooModel("mnasnet0_5"),
        ZooModel("mobilenet_v3_small"),
        ZooModel("efficientnet_b0"),
        ZooModel("shufflenet_v2_x1_0"),
        ZooModel("convnext_tiny"),
    )
}
