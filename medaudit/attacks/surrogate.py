"""The surrogate as the transfer attacks differentiate it: faster, and with the transfer boosters in front.

ART 1.20 has neither input diversity nor translation-invariant gradients nor a logit ensemble, and torchattacks
has them only as whole attacks of its own (DIFGSM, TIFGSM), which would fork our loop, clipping and seeding. So
the three transfer boosters are small torch modules placed in front of the surrogate that ART attacks, and ART's
step, momentum and projection stay untouched:
- DI (Xie et al. 2019): `InputDiversity` resizes and pads the input at random in `forward`;
  ART's gradient then flows through the transform, which is exactly DI-FGSM.
- TI (Dong et al. 2019): `GradientSmoothing` is the identity forward and convolves the incoming
  gradient with a normalised Gaussian backward, so ART's step (and its momentum) sees W * grad.
- Ensemble (Liu et al. 2017; Dong et al. 2018, eq. 6): `LogitEnsemble` averages the surrogates' logits.
Three changes make the surrogate cheaper to differentiate without changing the function it computes:
`fold_batchnorm` folds each eval-mode BatchNorm into the convolution feeding it (one pass less forward and
backward; checked against the unfolded logits), `out_of_place` turns in-place activations into out-of-place
ones (torch's in-place ReLU6 copies its channels_last input and differentiates on a slow path: at 64 px it was a
third of MobileNetV2's step), and `ChannelsLast` hands the surrogate its input in channels_last memory format,
the fast layout for depthwise convolutions on CPU (ART passes NCHW tensors).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medaudit.attacks.rows import stream

DI_MIN_SCALE = 299 / 330  # Xie et al. enlarge 299 px images to at most 330 px; we shrink by at most this, then pad
FOLD_CHECK_IMAGES = 8  # images on which a BatchNorm-folded surrogate must reproduce the unfolded logits
TI_SIGMAS = 3.0  # Dong et al.'s kernel spans +-3 standard deviations (gkern(kernlen, nsig=3))
# activations whose `inplace=True` `out_of_place` turns off (ReLU6 is a Hardtanh); the values are the same
IN_PLACE_ACTIVATIONS = (nn.ReLU, nn.Hardtanh, nn.SiLU, nn.Hardswish, nn.LeakyReLU)


class ChannelsLast(nn.Module):
    """A surrogate whose weights and inputs are in channels_last memory format; same logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))


class LogitEnsemble(nn.Module):
    """Several surrogates as one: the mean of their logits (Dong et al. 2018, ensemble in logits)."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def diverse_input(x: torch.Tensor, side: int, top: int, left: int) -> torch.Tensor:
    """DI's transform: (N, C, H, W) images resized bilinearly to side x side and zero-padded (mid-grey in
    [-1, 1]) back to H x W with the image's top-left corner at (top, left). Same shape, same range."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    return F.pad(small, (left, w - side - left, top, h - side - top))


class InputDiversity(nn.Module):
    """Input diversity (Xie et al. 2019): each forward, with probability `prob`, one random resize-and-pad
    for the whole batch. The side is drawn from [ceil(DI_MIN_SCALE * H), H], the paper's 299->[299, 330)
    range turned around so the image keeps its size. The attack loop reseeds it from (seed, iteration) before each
    step (`reseed`), so every row of a step sees the same transform however the rows are batched."""

    def __init__(self, prob: float):
        super().__init__()
        self.prob = prob
        self.generator = stream(0, 0)

    def reseed(self, seed: int, iteration: int) -> None:
        self.generator = stream(seed, iteration)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().set_state(self.generator.get_state())  # every forward of a step draws the same
        if torch.rand((), generator=g).item() >= self.prob:
            return x
        h = x.shape[-2]
        side = int(torch.randint(int(np.ceil(DI_MIN_SCALE * h)), h + 1, (), generator=g).item())
        top, left = (int(v) for v in torch.randint(0, h - side + 1, (2,), generator=g))
        return diverse_input(x, side, top, left)


def gaussian_kernel(side: int) -> torch.Tensor:
    """TI's (side, side) Gaussian kernel, +-TI_SIGMAS standard deviations across, summing to 1; side 1 is [[1]]."""
    z = torch.linspace(-TI_SIGMAS, TI_SIGMAS, side, dtype=torch.float64) if side > 1 else torch.zeros(1).double()
    g = torch.exp(-(z**2) / 2)
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum()).float()


class _SmoothGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(kernel)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (kernel,) = ctx.saved_tensors
        c, side = grad.shape[1], kernel.shape[-1]
        weight = kernel.to(grad.device, grad.dtype).expand(c, 1, side, side)
        return F.conv2d(grad, weight, padding=side // 2, groups=c), None  # the kernel is symmetric: W^T = W


class GradientSmoothing(nn.Module):
    """Translation invariance (Dong et al. 2019): identity forward; backward convolves the gradient per
    channel with a normalised Gaussian of side `side` (zero padding, as the paper's 'SAME')."""

    def __init__(self, side: int):
        super().__init__()
        self.register_buffer("kernel", gaussian_kernel(side), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SmoothGradient.apply(x, self.kernel)


class FoldChangedLogits(RuntimeError):
    """Folding a model's BatchNorms changed its logits beyond float tolerance (a conv output read elsewhere too)."""


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A frozen eval-mode copy of `model` in which every BatchNorm2d fed directly by a Conv2d is folded into
    that convolution (weights scaled, bias shifted) and replaced by the identity. Which BN follows which conv
    is read from one forward pass on `example`; the folded copy must give the same logits (to float
    tolerance), since a conv output that something else also reads cannot be folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval().requires_grad_(False).to(example.device)
    conv_of_output: dict[int, str] = {}
    conv_outputs: list[torch.Tensor] = []  # kept alive so that no other tensor reuses their ids
    pairs: list[tuple[str, str]] = []
    names = {id(m): n for n, m in model.named_modules()}

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            conv_of_output[id(output)] = names[id(module)]
            conv_outputs.append(output)
        elif id(inputs[0]) in conv_of_output:
            pairs.append((conv_of_output[id(inputs[0])], names[id(module)]))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
    with torch.no_grad():
        reference = model(example)
    for handle in handles:
        handle.remove()
    for conv, bn in pairs:
        # a deep copy of the conv, so its own forward (e.g. TF 'SAME' padding) is kept
        fused = fuse_conv_bn_eval(model.get_submodule(conv), model.get_submodule(bn))
        model.set_submodule(conv, fused.requires_grad_(False))
        model.set_submodule(bn, nn.Identity())
    with torch.no_grad():
        folded = model(example)
    scale = reference.abs().max().clamp_min(1.0)
    if not torch.allclose(folded, reference, rtol=1e-3, atol=1e-3 * float(scale)):
        change = (folded - reference).abs().max()
        raise FoldChangedLogits(f"folding BatchNorm changed the surrogate's logits by {change:.3g}")
    return model


def folded_if_exact(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A frozen eval-mode copy of a target for the white-box tier, BatchNorm folded (`fold_batchnorm`) where the
    fold keeps its logits; otherwise unfolded: a TorchScript module, whose submodules no hook sees, or one whose
    fold changes the logits. The copy only crafts images (the target itself scores them), so a fold that moves
    logits in their last bits changes no measured AUC; unfolded it costs a third more per APGD step."""
    if not any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        try:
            return fold_batchnorm(model, example)
        except FoldChangedLogits:
            pass
    return copy.deepcopy(model).to(example.device)  # the caller freezes it (a ScriptModule has no requires_grad_)


def out_of_place(model: nn.Module) -> nn.Module:
    """`model` with every in-place activation made out-of-place (same values and gradients, changed in place)."""
    for module in model.modules():
        if isinstance(module, IN_PLACE_ACTIVATIONS):
            module.inplace = False
    return model


def surrogate_model(
    models: Sequence[nn.Module], x: np.ndarray, device: str, *, ti_kernel: int = 0, diversity_prob: float = 0.0
) -> nn.Module:
    """The differentiable function a transfer attack differentiates: [TI] -> [DI] -> one surrogate or their logit
    ensemble, each with BatchNorm folded, activations out of place and in channels_last. The surrogates are copied (weights frozen), so the
    callers' models are untouched. `x`: the images to attack (the first few find and check the folds)."""
    if not models:
        raise ValueError("a transfer attack needs at least one surrogate")
    example = torch.from_numpy(x[:FOLD_CHECK_IMAGES]).to(device)
    members = [ChannelsLast(out_of_place(fold_batchnorm(m, example))) for m in models]
    layers: list[nn.Module] = []
    if ti_kernel:
        layers.append(GradientSmoothing(ti_kernel))
    if diversity_prob:
        layers.append(InputDiversity(diversity_prob))
    layers.append(members[0] if len(members) == 1 else LogitEnsemble(members))
    return (layers[0] if len(layers) == 1 else nn.Sequential(*layers)).eval().requires_grad_(False)
