"""Transfer attacks crafted on surrogates with the Adversarial Robustness Toolbox, and control noise.

All images live in the canonical space: float32 NCHW in [-1, 1]; epsilon is an L-inf bound in those
units (Bortsova et al. 2021, section 3.2). Attacks are untargeted and use the true labels.

One entry point, `craft_adversarial`, crafts every epsilon of one attack on one surrogate or an ensemble.
The loops are ART's: FGSM's gradient is ART's `loss_gradient`, taken once for all epsilons; PGD and
MI-FGSM are ART's PyTorch `ProjectedGradientDescent` and `MomentumIterativeMethod`. ART 1.20 has neither
input diversity nor translation-invariant gradients nor a logit ensemble, and torchattacks has them only
as whole attacks of its own (DIFGSM, TIFGSM), which would fork our loop, clipping and seeding. So the
three transfer boosters are small torch modules placed in front of the surrogate that ART attacks, and
ART's step, momentum and projection stay untouched:
- DI (Xie et al. 2019): `InputDiversity` resizes and pads the input at random in `forward`;
  ART's gradient then flows through the transform, which is exactly DI-FGSM.
- TI (Dong et al. 2019): `GradientSmoothing` is the identity forward and convolves the incoming
  gradient with a normalised Gaussian backward, so ART's step (and its momentum) sees W * grad.
- Ensemble (Liu et al. 2017; Dong et al. 2018, eq. 6): `LogitEnsemble` averages the surrogates' logits.
Two changes make the surrogate cheaper to differentiate without changing the function it computes:
`fold_batchnorm` folds each eval-mode BatchNorm into the convolution feeding it (one pass less forward and
backward; checked against the unfolded logits), and `ChannelsLast` hands the surrogate its input in
channels_last memory format, the fast layout for depthwise convolutions on CPU (ART passes NCHW tensors).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medaudit.data import grey_from_pm1, pm1_from_grey
from medaudit.scenario import FGSM, MIFGSM, PGD

AttackParams = FGSM | PGD | MIFGSM
DI_MIN_SCALE = 299 / 330  # Xie et al. enlarge 299 px images to at most 330 px; we shrink by at most this, then pad
FOLD_CHECK_IMAGES = 8  # images on which a BatchNorm-folded surrogate must reproduce the unfolded logits
TI_SIGMAS = 3.0  # Dong et al.'s kernel spans +-3 standard deviations (gkern(kernlen, nsig=3))


def attack_id(attack: AttackParams) -> str:
    """A stable id built from the attack's fields, e.g. `pgd-step0.01-it20`; DI and TI appear only when on,
    e.g. `mifgsm-step0.01-it10-mu1-di0.5-ti3`."""
    if isinstance(attack, FGSM):
        return "fgsm"
    if isinstance(attack, PGD):
        base = f"pgd-step{attack.step_pm1:g}-it{attack.iterations}" + ("-rs" if attack.random_start else "")
    else:
        base = f"mifgsm-step{attack.step_pm1:g}-it{attack.iterations}-mu{attack.decay:g}"
    return (
        base
        + (f"-di{attack.diversity_prob:g}" if attack.diversity_prob else "")
        + (f"-ti{attack.ti_kernel}" if attack.ti_kernel else "")
    )


@dataclass(frozen=True)
class Perturbed:
    """Adversarial images at one epsilon and their bookkeeping."""

    x_adv: np.ndarray  # (N, C, H, W) float32 in [-1, 1]
    max_abs_delta: float  # largest |x_adv - x| reached, in [-1, 1] units (<= epsilon)


class MultiLabelBCE(nn.Module):
    """Binary cross-entropy over 0/1 label vectors. Not a `BCEWithLogitsLoss` on purpose: ART reduces
    the labels of that loss to class indices, which is right for one sigmoid output, wrong for several."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, labels.float())


# ---------------------------------------------------------------- modules in front of the surrogate
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
    range turned around so the image keeps its size. Draws from torch's global generator (seeded per run)."""

    def __init__(self, prob: float):
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()).item() >= self.prob:
            return x
        h = x.shape[-2]
        side = int(torch.randint(int(np.ceil(DI_MIN_SCALE * h)), h + 1, ()).item())
        top, left = (int(v) for v in torch.randint(0, h - side + 1, (2,)))
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
        raise RuntimeError(f"folding BatchNorm changed the surrogate's logits by {change:.3g}")
    return model


def attacked_model(attack: AttackParams, models: Sequence[nn.Module], example: torch.Tensor) -> nn.Module:
    """The differentiable function ART attacks: [TI] -> [DI] -> one surrogate or their logit ensemble,
    each with BatchNorm folded and in channels_last. The surrogates are copied (weights frozen), so the
    callers' models are untouched. `example`: a few input images, to find and check the folds."""
    if not models:
        raise ValueError("craft_adversarial needs at least one surrogate")
    members = [ChannelsLast(fold_batchnorm(m, example)) for m in models]
    layers: list[nn.Module] = []
    if isinstance(attack, PGD | MIFGSM) and attack.ti_kernel:
        layers.append(GradientSmoothing(attack.ti_kernel))
    if isinstance(attack, PGD | MIFGSM) and attack.diversity_prob:
        layers.append(InputDiversity(attack.diversity_prob))
    layers.append(members[0] if len(members) == 1 else LogitEnsemble(members))
    return (layers[0] if len(layers) == 1 else nn.Sequential(*layers)).eval().requires_grad_(False)


# ---------------------------------------------------------------- ART
def art_classifier(
    model: nn.Module, *, n_logits: int, input_shape: tuple[int, int, int], multilabel: bool, device: str
):
    """Wrap a surrogate (logits out) for ART; its parameters are frozen so ART skips weight gradients."""
    from art.estimators.classification import PyTorchClassifier

    model = model.eval().requires_grad_(False)
    loss = MultiLabelBCE() if multilabel else nn.CrossEntropyLoss()
    return PyTorchClassifier(
        model=model,
        loss=loss,
        input_shape=input_shape,
        nb_classes=n_logits,
        clip_values=(-1.0, 1.0),
        preprocessing=None,  # ART's default adds an identity (x - 0) / 1
        device_type="gpu" if device == "cuda" else "cpu",
    )


def make_art_attack(attack: PGD | MIFGSM, classifier, epsilon_pm1: float, batch_size: int):
    """ART's iterative attack object for one attack spec at one epsilon (L-inf, [-1, 1] units)."""
    from art.attacks.evasion import MomentumIterativeMethod, ProjectedGradientDescent

    if isinstance(attack, PGD):
        return ProjectedGradientDescent(
            classifier,
            norm=np.inf,
            eps=epsilon_pm1,
            eps_step=attack.step_pm1,
            max_iter=attack.iterations,
            targeted=False,
            num_random_init=int(attack.random_start),
            batch_size=batch_size,
            verbose=False,
        )
    return MomentumIterativeMethod(
        classifier,
        norm=np.inf,
        eps=epsilon_pm1,
        eps_step=attack.step_pm1,
        decay=attack.decay,
        max_iter=attack.iterations,
        targeted=False,
        batch_size=batch_size,
        verbose=False,
    )


def art_labels(y: np.ndarray, n_logits: int, multilabel: bool) -> np.ndarray:
    """True labels in the form ART's loss takes: one-hot for softmax heads, 0/1 floats for multi-label."""
    if multilabel:
        return y.astype(np.float32)
    return np.eye(n_logits, dtype=np.float32)[y.astype(np.int64)]


def _seed(seed: int) -> None:
    np.random.seed(seed)  # ART's random start draws from numpy's global generator
    torch.manual_seed(seed)  # DI draws from torch's


def _projected(x: np.ndarray, x_adv: np.ndarray, epsilon_pm1: float) -> Perturbed:
    """Re-clip whatever the attack returned to the epsilon ball and to [-1, 1]; record the max |delta|."""
    x_adv = np.clip(np.clip(x_adv, x - epsilon_pm1, x + epsilon_pm1), -1.0, 1.0).astype(np.float32)
    return Perturbed(x_adv=x_adv, max_abs_delta=float(np.max(np.abs(x_adv - x))) if len(x) else 0.0)


def fgsm_gradient(classifier, x: np.ndarray, labels: np.ndarray, batch_size: int) -> np.ndarray:
    """ART's loss gradient w.r.t. the input, (N, C, H, W), batched as torch tensors (no numpy per step)."""
    device = classifier.device
    grads = [
        classifier.loss_gradient(
            torch.from_numpy(x[i : i + batch_size]).to(device), torch.from_numpy(labels[i : i + batch_size]).to(device)
        )
        .cpu()
        .numpy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(grads) if grads else np.zeros_like(x)


def run_attack(
    attack: AttackParams,
    classifier,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epsilon_pm1: float,
    n_logits: int,
    multilabel: bool,
    batch_size: int = 64,
    seed: int = 0,
) -> Perturbed:
    """One epsilon of one attack on an ART classifier, seeded; re-clipped to the epsilon ball and [-1, 1]."""
    _seed(seed)
    labels = art_labels(y, n_logits, multilabel)
    if isinstance(attack, FGSM):
        x_adv = x + epsilon_pm1 * np.sign(fgsm_gradient(classifier, x, labels, batch_size))
    else:
        x_adv = make_art_attack(attack, classifier, epsilon_pm1, batch_size).generate(x=x, y=labels)
    return _projected(x, x_adv, epsilon_pm1)


def craft_adversarial(
    attack: AttackParams,
    models: Sequence[nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    *,
    epsilons_pm1: Sequence[float],
    n_logits: int,
    multilabel: bool,
    batch_size: int,
    seed: int,
    device: str,
) -> dict[float, Perturbed]:
    """Adversarial images for every epsilon of one attack, crafted on one surrogate (`models` of length 1)
    or on the logit ensemble of several. x: (N, C, H, W) float32 in [-1, 1]; y: class indices (N,) or
    0/1 label vectors (N, K) when multilabel. FGSM takes the loss gradient once and scales its sign by
    each epsilon; the iterative attacks run once per epsilon, each reseeded with `seed`, so one epsilon's
    images do not depend on which other epsilons were asked for."""
    example = torch.from_numpy(x[:FOLD_CHECK_IMAGES]).to(device)
    classifier = art_classifier(
        attacked_model(attack, models, example),
        n_logits=n_logits,
        input_shape=tuple(x.shape[1:]),
        multilabel=multilabel,
        device=device,
    )
    if isinstance(attack, FGSM):
        _seed(seed)
        sign = np.sign(fgsm_gradient(classifier, x, art_labels(y, n_logits, multilabel), batch_size))
        return {eps: _projected(x, x + eps * sign, eps) for eps in epsilons_pm1}
    return {
        eps: run_attack(
            attack,
            classifier,
            x,
            y,
            epsilon_pm1=eps,
            n_logits=n_logits,
            multilabel=multilabel,
            batch_size=batch_size,
            seed=seed,
        )
        for eps in epsilons_pm1
    }


# ---------------------------------------------------------------- control and delivery
def control_noise(x: np.ndarray, x_adv: np.ndarray, seed: int) -> np.ndarray:
    """The same perturbation, its pixel positions randomly permuted per image (channels kept together)."""
    rng = np.random.default_rng(seed)
    delta = x_adv - x
    n, c, h, w = delta.shape
    flat = delta.reshape(n, c, h * w)
    shuffled = np.stack([flat[i][:, rng.permutation(h * w)] for i in range(n)]).reshape(n, c, h, w)
    return np.clip(x + shuffled, -1.0, 1.0).astype(np.float32)


def deliver_uint8(x: np.ndarray) -> np.ndarray:
    """Round-trip canonical images through 8-bit files, as an attacker would hand them over."""
    return pm1_from_grey(grey_from_pm1(x))
