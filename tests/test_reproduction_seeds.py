"""What the document says when finding 2's contradicted target is retrained from other seeds
(`reproduction.target_seeds`, `explain.seed_sentence`), on hand-worked intervals: each verdict is reached once."""

from __future__ import annotations

from pathlib import Path

import pytest

from reproduction import explain
from reproduction.assess import assess
from reproduction.findings import BY_KEY
from reproduction.protocol import RunInfo, Settings
from reproduction.runs import ModalityRuns
from reproduction.target_seeds import SeedChecks
from tests.test_reproduction_assess import MOVES, STILL, judged
from tests.test_reproduction_runs import run_entry


def checks(per_seed: dict[int, list[tuple[float, float]]], arms=(MOVES, MOVES)) -> SeedChecks:
    """MNv2 R targets, one (FGSM, PGD) pair of R − IN intervals per seed, judged under finding 2's claim."""
    comparisons = []
    for seed, pair in per_seed.items():
        for attack, (low, high) in zip(("FGSM", "PGD"), pair, strict=True):
            c = judged(low, high, f"MNv2 R, {attack}: R − IN, seed {seed}")
            comparisons.append(type(c)(c.label, c.interval_at, arms=arms))
    n = len(per_seed)
    return SeedChecks(
        "mobilenet_v2",
        "random",
        tuple(per_seed),
        (0.94,) * n,
        (0.986,) * n,
        (17,) * n,
        ("AMD EPYC (AVX512)",),
        tuple(comparisons),
        assess(comparisons, BY_KEY["2"].claim),
    )


@pytest.mark.parametrize(
    "per_seed, verdict",
    [
        (
            {1000: [(-0.01, 0.01), (0.01, 0.03)], 1001: [(-0.02, 0.04), (-0.01, 0.02)]},
            "none supports the finding, 1 contradicts it (1 of 2 targets): R surrogates move no seed's target "
            "decidedly more than IN ones, so the finding's failure is not one model's.",
        ),
        (
            {1000: [(-0.01, 0.01), (-0.02, 0.03)], 1001: [(-0.02, 0.04), (-0.01, 0.03)]},
            "none decides either way: the contradiction rests on one trained model.",
        ),
        (
            {1000: [(-0.03, -0.01), (0.01, 0.03)], 1001: [(-0.02, 0.04), (-0.01, 0.02)]},
            "the outcome depends on the trained model (1 supports the finding, 1 contradicts it).",
        ),
    ],
)
def test_the_seed_sentence_says_what_retraining_showed(per_seed, verdict):
    c = checks(per_seed)
    points = [(low + high) / 2 for pair in per_seed.values() for low, high in pair]
    fgsm, pgd = points[0::2], points[1::2]
    assert explain.seed_sentence(c) == (
        f"Retrained from seeds 1000–1001 against the same surrogates, MNv2 R gives R − IN {min(fgsm):+.3f} to "
        f"{max(fgsm):+.3f} under FGSM and {min(pgd):+.3f} to {max(pgd):+.3f} under PGD (0 of 4 without transfer): "
        + verdict
    )


def test_a_comparison_without_transfer_is_counted_and_tabled_at_95_percent():
    c = checks({1000: [(0.01, 0.03), (0.01, 0.05)]}, arms=(STILL, MOVES))  # the R arm does not beat its control
    assert c.assessment.outcome == "no transfer to compare"
    assert "(2 of 2 without transfer): none decides either way" in explain.seed_sentence(c)
    table = explain.seed_table({"pneumonia": [c]}, {"pneumonia": ModalityRuns(Path("."), (), None)})
    assert table[0] == "## pneumonia: finding 2 on MNv2 R targets from 1 seed"
    assert table[6] == (
        "| 1000 | 0.986 (17) | 0.940 | MNv2 R, FGSM: R − IN | +0.005 (-0.010, +0.020) | +0.030 (+0.010, +0.050) | "
        "+0.020 (+0.010, +0.030) at 95.0% | no transfer |"
    )


def test_a_contradiction_nobody_retrained_says_so():
    a = {"pneumonia": {f.key: assess([], f.claim) for f in BY_KEY.values()}}
    contradicted = checks({1000: [(0.01, 0.03), (0.01, 0.03)]}).assessment
    a["pneumonia"]["2"] = contradicted
    [text] = explain.against(BY_KEY["2"], a, {"pneumonia": "Rad"}, {})
    assert text.endswith("while the paper's Rad table gives d -0.31, -0.19. No experiment has tested why yet.")
    [text] = explain.against(BY_KEY["2"], a, {"pneumonia": "Rad"}, {"pneumonia": [checks({1000: [(0.01, 0.03)] * 2})]})
    assert text.endswith(
        "2 contradict it (1 of 1 targets): R surrogates move no seed's target decidedly more than IN ones, so the "
        "finding's failure is not one model's."
    )


def test_the_appendix_sets_seed_1000_beside_the_committed_target_of_the_same_spec():
    c = checks({1000: [(-0.01, 0.01)] * 2, 1001: [(-0.01, 0.01)] * 2})  # both trained to 0.986 in 17 epochs

    def text(val_auc: float, epochs: int) -> str:
        entry = run_entry(val_auc, epochs, cpu="AMD EPYC (AVX512)")
        info = RunInfo(
            modality="pneumonia",
            settings=Settings(image_size=32, test_limit=None),
            runs={"pretraining__mobilenet_v2-random-d1": entry},
            total_seconds=entry.seconds,
        )
        return explain.seed_table({"pneumonia": [c]}, {"pneumonia": ModalityRuns(Path("."), (), info)})[2]

    assert text(0.985, 24).endswith(
        "The committed pretraining__mobilenet_v2-random-d1 target, seed 1000 on AMD EPYC (AVX512), trained to "
        "validation AUC 0.985 in 24 epochs; seed 1000 here to 0.986 in 17: the same spec gave another model."
    )
    assert text(0.9861, 17).endswith("seed 1000 here to 0.986 in 17: the same model, as far as training shows.")
