"""Transfer attacks crafted on a surrogate with the Adversarial Robustness Toolbox, and control noise.

All images live in the canonical space: float32 NCHW in [-1, 1]; epsilon is an L-inf bound in those
units (Bortsova et al. 2021, section 3.2). Attacks are untargeted and use the true labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medaudit.scenario import FGSM, MIFGSM, PGD

AttackParams = FGSM | PGD | MIFGSM


def attack_id(attack: AttackParams) -> str:
    """A stable id built from the attack's fields, e.g. `pgd-step0.01-it20`."""
    if isinstance(attack, FGSM):
        return "fgsm"
    if isinstance(attack, PGD):
        return f"pgd-step{attack.step_pm1:g}-it{attack.iterations}" + ("-rs" if attack.random_start else "")
    return f"mifgsm-step{attack.step_pm1:g}-it{attack.iterations}-mu{attack.decay:g}"


@dataclass(frozen=True)
class Perturbed:
    """Adversarial images and their bookkeeping."""

    x_adv: np.ndarray  # (N, C, H, W) float32 in [-1, 1]
    max_abs_delta: float  # largest |x_adv - x| reached, in [-1, 1] units (<= epsilon)


class MultiLabelBCE(torch.nn.Module):
    """Binary cross-entropy over 0/1 label vectors. Not a `BCEWithLogitsLoss` on purpose: ART reduces
    the labels of that loss to class indices, which is right for one sigmoid output, wrong for several."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())


def art_classifier(model: torch.nn.Module, *, n_logits: int, input_shape: tuple[int, int, int], multilabel: bool,
                   device: str):
    """Wrap a surrogate (logits out) for ART; its parameters are frozen so ART skips weight gradients."""
    from art.estimators.classification import PyTorchClassifier

    model = model.eval().requires_grad_(False)
    loss = MultiLabelBCE() if multilabel else torch.nn.CrossEntropyLoss()
    return PyTorchClassifier(model=model, loss=loss, input_shape=input_shape, nb_classes=n_logits,
                             clip_values=(-1.0, 1.0), device_type="gpu" if device == "cuda" else "cpu")


def make_art_attack(attack: AttackParams, classifier, epsilon_pm1: float, batch_size: int):
    """The ART attack object for one attack spec at one epsilon (L-inf, [-1, 1] units)."""
    from art.attacks.evasion import FastGradientMethod, MomentumIterativeMethod, ProjectedGradientDescent

    if isinstance(attack, FGSM):
        return FastGradientMethod(classifier, norm=np.inf, eps=epsilon_pm1, targeted=False, batch_size=batch_size)
    if isinstance(attack, PGD):
        return ProjectedGradientDescent(classifier, norm=np.inf, eps=epsilon_pm1, eps_step=attack.step_pm1,
                                        max_iter=attack.iterations, targeted=False,
                                        num_random_init=int(attack.random_start), batch_size=batch_size,
                                        verbose=False)
    return MomentumIterativeMethod(classifier, norm=np.inf, eps=epsilon_pm1, eps_step=attack.step_pm1,
                                   decay=attack.decay, max_iter=attack.iterations, targeted=False,
                                   batch_size=batch_size, verbose=False)


def art_labels(y: np.ndarray, n_logits: int, multilabel: bool) -> np.ndarray:
    """True labels in the form ART's loss takes: one-hot for softmax heads, 0/1 floats for multi-label."""
    if multilabel:
        return y.astype(np.float32)
    return np.eye(n_logits, dtype=np.float32)[y.astype(np.int64)]


def run_attack(attack: AttackParams, classifier, x: np.ndarray, y: np.ndarray, *, epsilon_pm1: float,
               n_logits: int, multilabel: bool, batch_size: int = 64, seed: int = 0) -> Perturbed:
    """Craft adversarial images on the surrogate; re-clip to the epsilon ball and to [-1, 1]."""
    np.random.seed(seed)  # ART's random start draws from numpy's global generator
    torch.manual_seed(seed)
    art_attack = make_art_attack(attack, classifier, epsilon_pm1, batch_size)
    x_adv = art_attack.generate(x=x, y=art_labels(y, n_logits, multilabel))
    x_adv = np.clip(np.clip(x_adv, x - epsilon_pm1, x + epsilon_pm1), -1.0, 1.0).astype(np.float32)
    return Perturbed(x_adv=x_adv, max_abs_delta=float(np.max(np.abs(x_adv - x))) if len(x) else 0.0)


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
    return (np.rint((x + 1.0) * 127.5).clip(0, 255) / 127.5 - 1.0).astype(np.float32)


def craft_adversarial(attack: AttackParams, models, x: np.ndarray, y: np.ndarray, *, epsilons_pm1, n_logits: int,
                      multilabel: bool, batch_size: int = 64, seed: int = 0, device: str = "cpu") -> dict[float, Perturbed]:
    """Adversarial images at every epsilon, crafted on one surrogate (provisional: the attack stage replaces it)."""
    if len(models) != 1:
        raise NotImplementedError("ensembles arrive with the attack stage's rewrite")
    classifier = art_classifier(models[0], n_logits=n_logits, input_shape=tuple(x.shape[1:]), multilabel=multilabel,
                                device=device)
    return {eps: run_attack(attack, classifier, x, y, epsilon_pm1=eps, n_logits=n_logits, multilabel=multilabel,
                            batch_size=batch_size, seed=seed) for eps in epsilons_pm1}
