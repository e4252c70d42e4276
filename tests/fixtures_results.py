"""Typed records for criteria, gate and report tests: small builders and one realistic `AuditResults`.

The full record (`make_results`) has 2 scenario rows with 2 seeds and a seed ensemble each, 2 attacks and
4 epsilons. Numbers follow the paper's shape (Bortsova et al. 2021, Tables 2 and 4): adversarial AUC falls
with epsilon, a different-architecture surrogate on less data transfers less. Built to exercise every rule:
FGSM's SSIM bound binds at 0.03 and PGD's never does; row B's FGSM is worst at 0.02, below the largest
admissible epsilon; row B's seed 1 is unfit; control noise alone degrades the target at large epsilon.
Example images are skimage's camera() downsized to 32x32 grey, attacked by a fixed sign pattern.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image
from skimage import data as skdata
from skimage.transform import resize

from medaudit.criteria import judge
from medaudit.finalize import seed_spread
from medaudit.results import (
    AuditResults,
    CellRecord,
    DataRecord,
    EnvironmentRecord,
    EpochRecord,
    EpsilonChoice,
    Example,
    ExecutionStats,
    IntervalRecord,
    LoadCheck,
    OperatingPoint,
    PackageVersion,
    PairedComparison,
    PerImageFile,
    Provenance,
    SurrogateFitness,
    SurrogateResult,
    TargetRecord,
    Timings,
    WhiteboxCheck,
)
from medaudit.scenario import FGSM, PGD, CardFields, Scenario

TARGET_SHA256 = "3f5a9c0d1e2b4a6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
SCENARIO_FILE_SHA256 = "5ce7a21f09b3d84e6a1c2f3b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8"
CODE_COMMIT = "c3bcfff2d4e6a8b0c1d3e5f7a9b1c3d5e7f9a1b3"
EPSILONS = (0.01, 0.02, 0.03, 0.04)
ATTACKS = {"fgsm": FGSM(name="fgsm"), "pgd-step0.01-it20": PGD(name="pgd", step_pm1=0.01, iterations=20)}
SSIM = {"fgsm": (0.972, 0.931, 0.905, 0.861), "pgd-step0.01-it20": (0.985, 0.962, 0.941, 0.921)}
ADMISSIBLE = {a: tuple(e for e, s in zip(EPSILONS, SSIM[a]) if s >= 0.9) for a in ATTACKS}
CLEAN = 0.86
THRESHOLD = 0.5  # the scenario's clinical score threshold
TEST_POSITIVES, TEST_NEGATIVES = 390, 234
ROW_A, ROW_B = "same-imagenet-d2", "different-imagenet-d2/2"
# row -> surrogate id -> (arch, seed, adversarial AUC per attack per epsilon); `ens-*` average the row's seeds
ROWS = {
    ROW_A: {
        "densenet121-imagenet-d2-s0-a1b2c3": (
            "densenet121",
            0,
            {"fgsm": (0.62, 0.50, 0.43, 0.40), "pgd-step0.01-it20": (0.70, 0.56, 0.47, 0.41)},
        ),
        "densenet121-imagenet-d2-s1-d4e5f6": (
            "densenet121",
            1,
            {"fgsm": (0.64, 0.53, 0.47, 0.44), "pgd-step0.01-it20": (0.72, 0.60, 0.50, 0.45)},
        ),
        "ens-same-imagenet-d2": (
            "ensemble",
            -1,
            {"fgsm": (0.60, 0.48, 0.42, 0.38), "pgd-step0.01-it20": (0.66, 0.52, 0.44, 0.39)},
        ),
    },
    ROW_B: {
        "resnet18-imagenet-d2over2-s0-0f9e8d": (
            "resnet18",
            0,
            {"fgsm": (0.80, 0.66, 0.72, 0.70), "pgd-step0.01-it20": (0.82, 0.77, 0.74, 0.72)},
        ),
        "resnet18-imagenet-d2over2-s1-7c6b5a": (
            "resnet18",
            1,
            {"fgsm": (0.84, 0.83, 0.82, 0.81), "pgd-step0.01-it20": (0.85, 0.84, 0.83, 0.83)},
        ),
        "ens-different-imagenet-d2/2": (
            "ensemble",
            -1,
            {"fgsm": (0.79, 0.70, 0.74, 0.71), "pgd-step0.01-it20": (0.81, 0.76, 0.73, 0.70)},
        ),
    },
}
UNFIT = {
    "resnet18-imagenet-d2over2-s1-7c6b5a": (
        "clean test AUC lower bound 0.552 < floor 0.60",
        "fgsm white-box AUC 0.581 at ε 0.03 > 0.50",
    )
}
BUDGET_STOPPED = {"densenet121-imagenet-d2-s1-d4e5f6"}
GATE = {
    "min_relative_auc": 0.8,
    "max_adversarial_specific_drop": 0.25,
    "min_control_relative_auc": 0.9,
    "threshold": THRESHOLD,
}


def iv(point: float, low: float | None = None, high: float | None = None, half: float = 0.03) -> IntervalRecord:
    """An interval record; by default symmetric with half-width `half`."""
    return IntervalRecord(
        point=point,
        low=point - half if low is None else low,
        high=point + half if high is None else high,
        confidence=0.95,
        resamples=1000,
        degenerate=0,
    )


def control_auc(clean: float, eps: float) -> float:
    """Control noise costs 0.02 AUC plus 2 per unit of epsilon: at 0.04 the target is noise-fragile."""
    return round(clean - 0.02 - 2.0 * eps, 4)


def make_operating_point(clean: float, adv: float, control: float) -> OperatingPoint:
    sens_clean, spec_clean = 0.73, 0.90
    sens_adv, spec_adv = (
        round(max(0.0, sens_clean - 1.1 * (clean - adv)), 3),
        round(spec_clean - 0.9 * (clean - adv), 3),
    )
    sens_ctl, spec_ctl = round(sens_clean - 0.3 * (clean - control), 3), round(spec_clean - 2.5 * (clean - control), 3)
    tp_lost, fp_made = round(TEST_POSITIVES * (sens_clean - sens_adv)), round(TEST_NEGATIVES * (spec_clean - spec_adv))
    tp_ctl, fp_ctl = round(TEST_POSITIVES * (sens_clean - sens_ctl)), round(TEST_NEGATIVES * (spec_clean - spec_ctl))
    return OperatingPoint(
        threshold=THRESHOLD,
        threshold_rule=f"scenario threshold {THRESHOLD:g}",
        sensitivity_clean=sens_clean,
        specificity_clean=spec_clean,
        sensitivity_adversarial=sens_adv,
        specificity_adversarial=spec_adv,
        sensitivity_control=sens_ctl,
        specificity_control=spec_ctl,
        true_positives_lost=tp_lost,
        false_positives_created=fp_made,
        true_positives_lost_control=tp_ctl,
        false_positives_created_control=fp_ctl,
        decision_flips=tp_lost + fp_made + 7,
        decision_flips_control=tp_ctl + fp_ctl + 2,
    )


def make_cell(
    row_id: str,
    surrogate_id: str,
    attack_id: str,
    eps: float,
    adv: float,
    *,
    clean: float = CLEAN,
    control: float | None = None,
    relative: IntervalRecord | None = None,
    drop: IntervalRecord | None = None,
    control_relative: IntervalRecord | None = None,
    ssim: float = 0.93,
    member_ids: tuple[str, ...] | None = None,
    classes: int = 1,
) -> CellRecord:
    """A cell whose intervals follow from the points unless given."""
    control = control_auc(clean, eps) if control is None else control
    return CellRecord(
        id=f"{surrogate_id}/{attack_id}/eps{eps:g}",
        surrogate_id=surrogate_id,
        member_ids=member_ids if member_ids is not None else (surrogate_id,),
        row_id=row_id,
        attack_id=attack_id,
        attack=ATTACKS.get(attack_id, FGSM(name="fgsm")),
        epsilon_pm1=eps,
        epsilon_grey_levels=eps * 127.5,
        auc_clean=iv(clean),
        auc_adversarial=iv(adv, half=0.035),
        auc_control=iv(control),
        relative_auc=relative or iv(round(adv / clean, 4), half=0.04),
        relative_auc_control=control_relative or iv(round(control / clean, 4), half=0.01),
        adversarial_specific_drop=drop or iv(round(control - adv, 4), half=0.035),
        per_class_auc_clean=(clean,) * classes,
        per_class_auc_adversarial=(adv,) * classes,
        surrogate_auc_clean=iv(0.84),
        surrogate_auc_whitebox=round(max(0.0, adv - 0.45), 3),
        sibling_relative_auc=round(adv / clean + 0.05, 3),
        whitebox_flag=False,
        operating_point=make_operating_point(clean, adv, control) if classes == 1 else None,
        mean_ssim=ssim,
        mean_ssim_control=min(1.0, ssim + 0.01),
        max_abs_delta_pm1=eps,
        target_queries=2 * (TEST_POSITIVES + TEST_NEGATIVES),
    )


def make_surrogate(
    row_id: str,
    sid: str,
    seed: int = 0,
    *,
    arch: str = "densenet121",
    init: str = "imagenet",
    split: str = "d2",
    fit: bool = True,
    reasons: tuple[str, ...] = (),
    member_ids: tuple[str, ...] = (),
    budget: bool = False,
    whitebox_auc: float = 0.12,
) -> SurrogateResult:
    """A trained surrogate (or an ensemble, given member ids) with its learning curve and fitness."""
    epochs = 20 if budget else 9
    curve = tuple(
        EpochRecord(
            epoch=k + 1,
            train_loss=round(0.69 * 0.8**k, 4),
            val_auc=round(min(0.9, 0.6 + 0.05 * k) if budget else min(0.88, 0.6 + 0.07 * k), 4),
            learning_rate=round(1e-3 * 0.9**k, 7),
        )
        for k in range(0 if member_ids else epochs)
    )
    checks = tuple(
        WhiteboxCheck(
            attack_id=a,
            epsilon_pm1=ADMISSIBLE[a][-1],
            bound=0.5,
            auc_whitebox=0.581 if not fit and a == "fgsm" else whitebox_auc,
            sibling_relative_auc=None if member_ids else 0.9,
            sibling_bound=0.97,
            passed=fit or a != "fgsm",
        )
        for a in ATTACKS
    )
    return SurrogateResult(
        id=sid,
        row_id=row_id,
        arch=arch,
        family="ensemble" if member_ids else arch.rstrip("0123456789"),
        init=init,
        split=split,
        seed=seed,
        member_ids=member_ids,
        n_train=2112 if split == "d2" else 1056,
        n_val=234 if split == "d2" else 117,
        val_auc=0.87 if fit else 0.61,
        test_auc=iv(0.84, half=0.03) if fit else iv(0.60, 0.552, 0.648),
        epochs_run=len(curve),
        best_epoch=len(curve) if budget else max(0, len(curve) - 3),
        stop_reason="budget" if budget else "plateau",
        learning_curve=curve,
        train_seconds=0.0 if member_ids else 41.5,
        from_cache=False,
        atlas=("AML.T0043.002", "AML.T0005.000", "AML.T0005.002")
        if init == "imagenet"
        else ("AML.T0043.002", "AML.T0005.000"),
        fitness=SurrogateFitness(fit=fit, test_auc_floor=0.6, whitebox=checks, reasons=reasons),
    )


def make_choice(
    attack_id: str,
    admissible: tuple[float, ...],
    grid: tuple[float, ...] = EPSILONS,
    ssim: tuple[float, ...] | None = None,
    bound: float = 0.9,
) -> EpsilonChoice:
    ssim = ssim or tuple(0.95 if e in admissible else 0.85 for e in grid)
    binds = any(e not in admissible for e in grid)
    return EpsilonChoice(
        attack_id=attack_id,
        curve=tuple(zip(grid, ssim)),
        bound=bound,
        admissible_epsilons_pm1=admissible,
        chosen_epsilon_pm1=max(admissible, default=None),
        bound_binds=binds,
        reason=(f"largest ε with mean SSIM ≥ {bound:g}" if binds else "every ε in the grid met the bound")
        if admissible
        else f"no ε met mean SSIM ≥ {bound:g}",
    )


def make_scenario(*, name: str = "data_disparity", gate: dict | None = None, rows: dict | None = None) -> Scenario:
    """The scenario the fixture ran: each row's seeds as explicit surrogate rows."""
    rows = ROWS if rows is None else rows
    surrogates = []
    for row_id in rows:
        arch, init, data = row_id.split("-", 2)
        surrogates += [{"arch": arch, "init": init, "data": data, "seed": s} for s in (0, 1)]
    return Scenario.model_validate(
        {
            "name": name,
            "description": "Does an attacker without the target's development data still fool it?",
            "target": {"trained_on": "d1"},
            "data": {"source": "medmnist:pneumoniamnist", "task": "binary"},
            "surrogates": surrogates,
            "attacks": [a.model_dump() for a in ATTACKS.values()],
            "epsilons_pm1": list(EPSILONS),
            "gate": GATE if gate is None else gate,
            "ensembles": ["seeds"],
            "comparisons": [list(rows)[:2]] if len(rows) > 1 else [],
        }
    )


def _png(grey: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.rint((grey + 1) * 127.5).clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def make_examples(attack_ids=tuple(ATTACKS), eps: float = 0.03) -> tuple[Example, ...]:
    camera = resize(skdata.camera().astype(np.float64) / 127.5 - 1.0, (32, 32), anti_aliasing=True)
    out = []
    for k, attack_id in enumerate(attack_ids):
        sign = np.sign(np.random.default_rng(k).normal(size=camera.shape))
        adversarial = np.clip(camera + eps * sign, -1, 1)
        amplification = float(np.floor(0.5 / eps))
        out.append(
            Example(
                row_id=ROW_A,
                attack_id=attack_id,
                epsilon_pm1=eps,
                label=1,
                original_png=_png(camera),
                adversarial_png=_png(adversarial),
                perturbation_png=_png(np.clip((adversarial - camera) * amplification, -1, 1)),
                amplification=amplification,
                score_clean=0.91,
                score_adversarial=0.23 + 0.1 * k,
            )
        )
    return tuple(out)


def make_target(*, intended_use: str | None = None) -> TargetRecord:
    card = CardFields(
        name="pneumonia-densenet",
        intended_use=intended_use,
        architecture="densenet121",
        init="imagenet",
        input_size=(28, 28),
        channels=1,
        layout="NCHW",
        dtype="float32",
        value_range=(0.0, 1.0),
        output_kind="logits",
        task="binary",
        class_names=("normal", "pneumonia"),
        positive_index=1,
        input_name="image",
        output_name="logits",
    )
    sources = {
        "name": "sidecar",
        "intended_use": "sidecar" if intended_use else "not supplied",
        "architecture": "sidecar",
        "init": "sidecar",
        "input_size": "graph",
        "channels": "graph",
        "layout": "graph",
        "dtype": "graph",
        "value_range": "onnx metadata",
        "output_kind": "graph (final op)",
        "task": "sidecar",
        "class_names": "sidecar",
        "positive_index": "default (binary: column 1 of two)",
        "input_name": "graph",
        "output_name": "graph",
    }
    return TargetRecord(
        path="models/pneumonia.onnx",
        name="pneumonia-densenet",
        sha256=TARGET_SHA256,
        card=card,
        card_sources=sources,
        load_check=LoadCheck(images=64, output_columns=2, deterministic_max_diff=0.0, passed=True),
        device="CPUExecutionProvider",
        clean_auc=CLEAN,
    )


def make_data() -> DataRecord:
    return DataRecord(
        source="medmnist:pneumoniamnist",
        origin="MedMNIST v2 PneumoniaMNIST (Yang et al. 2023), paediatric chest X-rays from Kermany et al. 2018",
        licence="CC BY 4.0",
        resolved_path="/data/medmnist/pneumoniamnist.npz",
        sha256="c" * 64,
        split_ids_sha256="d" * 64,
        patient_level=False,
        split_rule="development images split at random (seed 0) into halves d1/d2; d1/10 a tenth of d1, d2/2 half "
        "of d2; the source's test split kept as the test set",
        label_mapping="source label 1 (pneumonia) positive, 0 (normal) negative",
        task="binary",
        class_names=("normal", "pneumonia"),
        image_size=28,
        resampling="none (source size equals the target's input)",
        channels=1,
        split_sizes={"d1": 2353, "d2": 2353, "d2/2": 1176, "d1/10": 235, "full": 4706},
        test_size=TEST_POSITIVES + TEST_NEGATIVES,
        test_positives=TEST_POSITIVES,
        test_selection="all",
        notes=("no patient ids: splits are image-level, so one patient may sit in several splits",),
    )


def make_results(
    *, name: str = "data_disparity", gate: dict | None = None, examples: bool = True, intended_use: str | None = None
) -> AuditResults:
    """The complete record as `finalize` builds it, judged by `criteria.judge`."""
    scenario = make_scenario(name=name, gate=gate)
    surrogates, cells = [], []
    for row_id, members in ROWS.items():
        seeds = tuple(s for s in members if not s.startswith("ens-"))
        split = row_id.split("-", 2)[2]
        for sid, (arch, seed, advs) in members.items():
            ensemble = sid.startswith("ens-")
            surrogates.append(
                make_surrogate(
                    row_id,
                    sid,
                    seed,
                    arch=f"{ROWS[row_id][seeds[0]][0]} ×{len(seeds)}" if ensemble else arch,
                    split=split,
                    fit=sid not in UNFIT,
                    reasons=UNFIT.get(sid, ()),
                    member_ids=seeds if ensemble else (),
                    budget=sid in BUDGET_STOPPED,
                )
            )
            for attack_id, values in advs.items():
                for k, (eps, adv) in enumerate(zip(EPSILONS, values)):
                    cells.append(
                        make_cell(
                            row_id,
                            sid,
                            attack_id,
                            eps,
                            adv,
                            ssim=SSIM[attack_id][k],
                            member_ids=seeds if ensemble else None,
                        )
                    )
    choices = tuple(make_choice(a, ADMISSIBLE[a], ssim=SSIM[a]) for a in ATTACKS)
    rules, verdict, worst = judge(scenario, cells, surrogates, choices)
    per_image = tuple(
        PerImageFile(path=f"per_image/{s.id.replace('/', 'over')}/{a}.csv", sha256=f"{k:02x}" * 32)
        for k, (s, a) in enumerate((s, a) for s in surrogates for a in ATTACKS)
    )
    comparison = PairedComparison(
        row_a=ROW_A,
        row_b=ROW_B,
        attack_id="fgsm",
        epsilon_pm1=0.03,
        difference_auc_adversarial=iv(-0.29, -0.34, -0.24),
        difference_relative_auc=iv(-0.337, -0.395, -0.279),
    )
    return AuditResults(
        status="complete",
        provenance=Provenance(
            medaudit_version="0.2.0",
            code_commit=CODE_COMMIT,
            command="medaudit run --target models/pneumonia.onnx --scenario scenarios/data_disparity.yaml --out audit",
            scenario_path="scenarios/data_disparity.yaml",
            scenario_file_sha256=SCENARIO_FILE_SHA256,
            scenario_canonical_sha256=scenario.content_hash(),
            started_at="2025-11-25T10:00:00+00:00",
            finished_at="2025-11-25T10:02:05+00:00",
        ),
        scenario=scenario,
        target=make_target(intended_use=intended_use),
        data=make_data(),
        environment=EnvironmentRecord(
            packages=tuple(
                PackageVersion(name=n, version=v)
                for n, v in (
                    ("medaudit", "0.2.0"),
                    ("torch", "2.14.1"),
                    ("adversarial-robustness-toolbox", "1.20.1"),
                    ("onnxruntime", "1.22.0"),
                    ("weasyprint", "70.0"),
                )
            ),
            python="3.11.2",
            platform="Linux-6.1-x86_64",
            device="cpu",
            gpu=None,
            cpu_threads=8,
            executor="local",
        ),
        surrogates=tuple(surrogates),
        cells=tuple(cells),
        epsilon_choice=choices,
        gate=rules,
        verdict=verdict,
        worst_case=worst,
        seed_spread=seed_spread(cells),  # the engine's own summary of these cells
        comparisons=(comparison,),
        examples=make_examples() if examples else (),
        per_image=per_image,
        target_queries=sum(c.target_queries for c in cells) + 624 + 64,
        timings=Timings(
            load_seconds=2.1, train_seconds=166.0, cells_seconds=153.6, finalize_seconds=1.2, total_seconds=322.9
        ),
        execution=ExecutionStats(surrogates_trained=4, surrogates_cached=0, cell_jobs_computed=48, cell_jobs_cached=0),
    )
