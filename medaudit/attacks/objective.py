"""The per-image objectives of the bound tiers: what an attacker who wants to lower the target's AUC maximises.

AUC ranks images, and each image is perturbed on its own, so lowering a positive's score or raising a negative's
can never raise the AUC: the AUC-optimal attack inside the epsilon ball is every image's own extremum, images the
target already gets wrong included. The margin loss reaches it: the best other class's logit minus the true
class's (binary, K = 2: the signed logit, so pushing it up pushes a positive's score down and a negative's up);
multi-label: every label's logit pushed towards its wrong side. Unlike cross-entropy it does not flatten once an
image is misclassified. Every loss here is per image, (N,), and is maximised.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

# the smallest normal float32: log(p) stays finite (-87.3) for a probability the target rounds to 0
PROBABILITY_FLOOR = float(torch.finfo(torch.float32).tiny)


def margin(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Best other logit minus the true class's (class indices `y`); multi-label: sum of -(2y - 1) z over labels."""
    if multilabel:
        return -((2 * y.float() - 1) * logits).sum(1)
    true = logits.gather(1, y.long()[:, None])[:, 0]
    others = logits.scatter(1, y.long()[:, None], float("-inf"))
    return others.max(1).values - true


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Cross-entropy of the true class; multi-label: binary cross-entropy summed over labels."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y.float(), reduction="none").sum(1)
    return F.cross_entropy(logits, y.long(), reduction="none")


# scenario name -> per-image loss; tests enrol every entry. "margin" is the one the bound tiers judge by.
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]] = {
    "margin": margin,
    "ce": cross_entropy,
}
JUDGING_LOSS = "margin"  # of an image's candidates (restarts, ensemble members) the one highest on it is kept


def logits_from_probabilities(p: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Scores as a query attacker sees them, mapped back to logits up to a per-image shift: log p (softmax, where
    margins of log p are margins of the logits) or logit(p) per label (sigmoid)."""
    p = p.double().clamp(PROBABILITY_FLOOR, 1.0)
    if multilabel:
        return torch.log(p) - torch.log1p(-p.clamp(max=1 - 1e-12))
    return torch.log(p)
