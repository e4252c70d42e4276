"""The paper's side: Bortsova, González-Gonzalo et al., Medical Image Analysis 2021.

Numbers are copied from ../shared/paper/TABLES.md (the paper's tables, cleaned); protocol facts are quoted
or paraphrased from the paper's text (../shared/paper/000_*.txt, sections 3.3, 4.1-4.3 and Table 1). Where the
text says nothing, so do we ("not stated").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

APPS = ("Oph", "Rad", "Path")  # ophthalmology (Kaggle DR), radiology (ChestX-ray14), pathology (PCam)
EPSILONS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06)  # the paper's sweep, [-1, 1] units
EPS_TABLES = 0.02  # the paper's epsilon for Tables 3-5 (section 4.1)

# Table 2: random-init target and surrogate on d1; adversarial and control AUC per epsilon, per attack
T2_CLEAN = {"Oph": 0.86, "Rad": 0.75, "Path": 0.87}
T2 = {
    "Oph": {
        "fgsm": ((0.56, 0.44, 0.37, 0.32, 0.32, 0.33), (0.85, 0.85, 0.84, 0.79, 0.76, 0.73)),
        "pgd": ((0.72, 0.56, 0.44, 0.37, 0.35, 0.34), (0.86, 0.85, 0.85, 0.84, 0.84, 0.84)),
    },
    "Rad": {
        "fgsm": ((0.61, 0.55, 0.52, 0.51, 0.51, 0.52), (0.75, 0.75, 0.75, 0.74, 0.73, 0.72)),
        "pgd": ((0.65, 0.57, 0.52, 0.49, 0.47, 0.45), (0.75, 0.75, 0.75, 0.75, 0.74, 0.74)),
    },
    "Path": {
        "fgsm": ((0.70, 0.56, 0.45, 0.38, 0.35, 0.33), (0.87,) * 6),
        "pgd": ((0.73, 0.56, 0.47, 0.41, 0.38, 0.36), (0.87,) * 6),
    },
}

# Tables 3-5 at epsilon 0.02, mean over FGSM/PGD and both target architectures: (AUC, relative % of clean)
T3_CLEAN = {"imagenet": {"Oph": 0.94, "Rad": 0.78, "Path": 0.87}, "random": {"Oph": 0.86, "Rad": 0.75, "Path": 0.87}}
T3 = {  # (arch, target init, surrogate init) -> app -> (AUC, rel %)
    ("same", "imagenet", "imagenet"): {"Oph": (0.00, 0), "Rad": (0.31, 40), "Path": (0.61, 70)},
    ("same", "random", "random"): {"Oph": (0.44, 51), "Rad": (0.48, 64), "Path": (0.41, 47)},
    ("same", "random", "imagenet"): {"Oph": (0.63, 74), "Rad": (0.63, 83), "Path": (0.60, 69)},
    ("same", "imagenet", "random"): {"Oph": (0.80, 85), "Rad": (0.55, 71), "Path": (0.71, 82)},
    ("different", "imagenet", "imagenet"): {"Oph": (0.24, 25), "Rad": (0.50, 65), "Path": (0.75, 86)},
    ("different", "random", "random"): {"Oph": (0.55, 64), "Rad": (0.64, 86), "Path": (0.71, 82)},
    ("different", "random", "imagenet"): {"Oph": (0.71, 83), "Rad": (0.65, 86), "Path": (0.69, 80)},
    ("different", "imagenet", "random"): {"Oph": (0.86, 92), "Rad": (0.59, 76), "Path": (0.75, 86)},
}
T4_CLEAN = {"Oph": 0.86, "Rad": 0.75, "Path": 0.87}
T4 = {  # (arch, surrogate data) -> app -> (AUC, rel %); random init, target on d1
    ("same", "d1"): {"Oph": (0.44, 51), "Rad": (0.48, 64), "Path": (0.41, 47)},
    ("same", "d2"): {"Oph": (0.56, 65), "Rad": (0.56, 75), "Path": (0.67, 77)},
    ("same", "d2/2"): {"Oph": (0.75, 88), "Rad": (0.59, 79), "Path": (0.65, 75)},
    ("different", "d1"): {"Oph": (0.55, 64), "Rad": (0.64, 86), "Path": (0.71, 82)},
    ("different", "d2"): {"Oph": (0.66, 77), "Rad": (0.65, 87), "Path": (0.74, 85)},
    ("different", "d2/2"): {"Oph": (0.80, 93), "Rad": (0.69, 91), "Path": (0.71, 81)},
}
T5_CLEAN = {"imagenet": {"Oph": 0.88, "Rad": 0.69, "Path": 0.79}, "random": {"Oph": 0.61, "Rad": 0.64, "Path": 0.81}}
T5 = {  # (arch, init of target and surrogate) -> app -> (AUC, rel %); target on d1/10, surrogate on d2
    ("same", "imagenet"): {"Oph": (0.13, 15), "Rad": (0.58, 84), "Path": (0.73, 93)},
    ("same", "random"): {"Oph": (0.60, 99), "Rad": (0.63, 99), "Path": (0.78, 96)},
    ("different", "imagenet"): {"Oph": (0.45, 51), "Rad": (0.62, 90), "Path": (0.75, 96)},
    ("different", "random"): {"Oph": (0.60, 100), "Rad": (0.63, 99), "Path": (0.79, 98)},
}

# Table 1: development split sizes (images), patient-level
T1_SPLITS = {
    "Oph": {"d1": 39030, "d2": 39028, "d1/10": 3906, "d2/2": 19514, "test": 10644},
    "Rad": {"d1": 43657, "d2": 42867, "d1/10": 3989, "d2/2": 23666, "test": 25596},
    "Path": {"d1": 147456, "d2": 147456, "d1/10": 14892, "d2/2": 73728, "test": 32768},
}

# Protocol facts for the deviations table, each with where the paper says it
ARCHITECTURES = "Inception-v3 and DenseNet-121, for targets and surrogates alike (3.3)"
RESOLUTION = "fundus rescaled to 512 × 512 px; chest X-rays downsampled to 256 × 256 px; PCam patches (3.3)"
TASKS = (
    "referable vs non-referable DR; 14 chest pathologies + 'no finding', mean AUC; metastasis in the patch centre (3.3)"
)
TRAINING = "'trained until convergence on a validation set using Adam optimization with learning rate decay' (3.3)"
VALIDATION = "'for every development dataset, the same split between training and validation images' (4.3)"
AUGMENTATION = (
    "fundus: flipping and rotation; chest: translation and horizontal flipping; PCam: horizontal and "
    "vertical flipping and random colour (3.3); batch class balancing stated for fundus only"
)
SPLITS = "random, at patient level, d1/d2 equal halves of the development set; d1/10 and d2/2 sampled from them"
TEST = "the whole independent test set of each application (Table 1)"
EPSILON = (
    "swept 0.01-0.06; 0.02 for every application, 'the highest perturbation degree that was still visually "
    "subtle for all applications and attack methods', perceptibility judged by the authors' eyes and by mean SSIM (4.1)"
)
EXAMPLES = (
    "Fig. 1: original images and FGSM adversarial images at each ε, with enlarged patches; Fig. 2: mean SSIM per ε "
    "(5.2); 6.6 asks for full-size or zoomed-in images the reader can examine"
)
MODELS_PER_CONFIGURATION = "one target and one surrogate per configuration ('four versions of each architecture', 4.2)"
ATTACKS = "FGSM and PGD (step 0.01, 20 iterations), L∞, untargeted, images in [-1, 1] (3.2, 4.1)"
HARDWARE = "not stated"


# ---------------------------------------------------------------- each finding's d, read from the paper's tables
PAPER_ATTACKS = ("fgsm", "pgd")  # the attacks the paper's findings rest on


def _rel(table: dict, key: tuple, app: str) -> float:
    return table[key][app][1] / 100


def _t2(app: str, kind: str, eps: float) -> tuple[float, float]:
    adv, control = T2[app][kind]
    i = EPSILONS.index(eps)
    return adv[i], control[i]


PAPER_D: dict[str, Callable[[str], list[float]]] = {
    "1": lambda app: (
        [_rel(T3, ("same", "imagenet", "imagenet"), app) - _rel(T3, ("same", "random", "random"), app)]
        if T3_CLEAN["imagenet"][app] > T3_CLEAN["random"][app]
        else []
    ),
    "2": lambda app: [
        _rel(T3, ("same", "imagenet", "imagenet"), app) - _rel(T3, ("same", "imagenet", "random"), app),
        _rel(T3, ("same", "random", "random"), app) - _rel(T3, ("same", "random", "imagenet"), app),
    ],
    "3": lambda app: [_rel(T4, ("same", "d1"), app) - _rel(T4, ("same", "d2"), app)],
    "4": lambda app: [_rel(T4, ("same", "d2"), app) - _rel(T4, ("same", "d2/2"), app)],
    "5": lambda app: [_rel(T4, ("same", "d1"), app) - _rel(T4, ("different", "d1"), app)],
    "6": lambda app: [T2_CLEAN[app] - _t2(app, k, EPS_TABLES)[1] for k in PAPER_ATTACKS],
    "7a": lambda app: [
        np.divide(*_t2(app, k, EPSILONS[-1])) - np.divide(*_t2(app, k, EPSILONS[0])) for k in PAPER_ATTACKS
    ],
    "7b": lambda app: [(_t2(app, "fgsm", EPS_TABLES)[0] - _t2(app, "pgd", EPS_TABLES)[0]) / T2_CLEAN[app]],
    "8": lambda app: [_rel(T5, (a, "random"), app) - 1 for a in ("same", "different")],
}
