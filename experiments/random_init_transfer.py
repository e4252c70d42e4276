"""Why did random-init surrogate -> random-init target transfer vanish? (issue 10, item 6)

Separates four causes on chest X-rays: training length (5 epochs as in docs/reproduction.md vs trained to a
validation-AUC plateau with medaudit's defaults), BatchNorm statistics (the surrogate attacked with its
running statistics as trained vs recalibrated on its own training images), resolution (PneumoniaMNIST at 32 px vs
the patient-level Kermany set at 64 px) and the surrogate's architecture family (EfficientNet-Lite0, MobileNetV2,
ResNet-18, DenseNet-121). Every target and surrogate is random-init; targets learn from d1 with seed 1, surrogates
from d2 (disjoint patients / images) with seed 2. PGD (ART, step 0.01, 20 iterations, as the engine runs it)
is crafted on each surrogate and scored on every target of the same resolution and training length, against the
control (the same perturbation, pixels shuffled), at two epsilons.

    python experiments/random_init_transfer.py /work/shared/data --out docs/random_init_transfer.json \
        --cache /tmp/rit-cache --stages pneumo32-short pneumo32-converged kermany64-converged

Writes the JSON after every stage (so a partial run still reports), resumes from the surrogate cache.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from medaudit.attackers.surrogates import SurrogateSpec, load_surrogate, predict_scores, train_surrogate
from medaudit.attacks import PGD, Crafting, control_noise
from medaudit.core.metrics import auc, bootstrap_paired_auc
from medaudit.data.audit_data import Images, load_data, make_splits, stratified_subset, to_canonical
from medaudit.scenario.threat_model import DataSection, TrainingSection

EPSILONS_PM1 = (0.01, 0.03)  # L-inf, [-1, 1] units
ATTACK = PGD(name="pgd", step_pm1=0.01, iterations=20)  # the paper's PGD
TARGET_SEED, SURROGATE_SEED, DATA_SEED = 1, 2, 0
# 5 epochs with exponential decay 0.9 and patience 3: what docs/reproduction.md ran on PneumoniaMNIST
SHORT = TrainingSection(epochs=5, lr_decay=0.9, lr_plateau_factor=1.0, patience=3)
CONVERGED = TrainingSection()  # medaudit's defaults: plateau early stopping, learning rate lowered on plateau
TRAINING = {"short": SHORT, "converged": CONVERGED}


def pneumo32(data_dir: Path, n_test: int) -> tuple[Images, dict, Images, str]:
    data = load_data(
        data_dir / "pneumoniamnist.npz",
        DataSection(task="binary", test_limit=n_test),
        image_size=32,
        channels=1,
        seed=DATA_SEED,
    )
    return data.development, data.splits, data.test, f"{data.source_sha256}:{data.split_ids_sha256}"


def kermany(data_dir: Path, n_test: int, size: int) -> tuple[Images, dict, Images, str]:
    """train+val of the 128 px file as the development set, split d1/d2 by patient; resized to `size` px."""
    path = data_dir / "chestxray_kermany_128.npz"
    with np.load(path) as npz:
        dev_x = np.concatenate([npz["train_images"], npz["val_images"]])
        dev_y = np.concatenate([npz["train_labels"], npz["val_labels"]]).reshape(-1).astype(np.int64)
        dev_g = np.concatenate([npz["train_patient_ids"], npz["val_patient_ids"]])
        test_x, test_y = npz["test_images"], npz["test_labels"].reshape(-1).astype(np.int64)
        test_g = npz["test_patient_ids"]
    keep = stratified_subset(test_y, n_test, DATA_SEED)
    dev = Images(to_canonical(dev_x, size), dev_y, dev_g)
    test = Images(to_canonical(test_x[keep], size), test_y[keep], test_g[keep])
    splits = make_splits(dev_g, DATA_SEED)  # patient-level: d1 and d2 share no patient
    assert not set(dev_g[splits["d1"]]) & set(dev_g[splits["d2"]])
    return dev, splits, test, f"{path.name}:{path.stat().st_size}:patient-split-seed{DATA_SEED}"


def recalibrate_bn(model: torch.nn.Module, x: np.ndarray, batch_size: int = 128) -> torch.nn.Module:
    """A copy whose BatchNorm running statistics are recomputed (cumulative average) over images `x` with the
    final weights; everything else stays in eval mode (no dropout, no stochastic depth)."""
    model = copy.deepcopy(model).eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            model(torch.from_numpy(x[start : start + batch_size]).contiguous(memory_format=torch.channels_last))
    return model.eval()


def cap_split(index: np.ndarray, groups: np.ndarray, limit: int | None) -> np.ndarray:
    """The images of a seeded random subset of the split's patients, about `limit` images (all when None)."""
    if limit is None or len(index) <= limit:
        return index
    patients = np.unique(groups[index])
    order = patients[np.random.default_rng(DATA_SEED).permutation(len(patients))]
    counts = np.array([np.sum(groups[index] == p) for p in order])
    keep = order[: int(np.searchsorted(np.cumsum(counts), limit, side="right"))]
    return index[np.isin(groups[index], keep)]


def input_gradients(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """d cross-entropy / d image for each test image (N, C*H*W), model in eval mode: the direction PGD follows."""
    grads = []
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[start : start + batch_size]).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(
            model.eval()(xb), torch.from_numpy(y[start : start + batch_size]), reduction="sum"
        )
        grads.append(torch.autograd.grad(loss, xb)[0].reshape(len(xb), -1).numpy())
    return np.concatenate(grads)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the cosine between two models' input gradients (0: unrelated, 1: aligned)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.maximum(norms, 1e-30)))


def train(kind: str, arch: str, role: str, dev: Images, splits: dict, size: int, digest: str, cache: Path):
    split, seed = ("d1", TARGET_SEED) if role == "target" else ("d2", SURROGATE_SEED)
    spec = SurrogateSpec(
        arch=arch,
        init="random",
        split=split,
        seed=seed,
        training=TRAINING[kind],
        task="binary",
        n_logits=2,
        in_channels=1,
        image_size=size,
        data_sha256=digest,
        split_seed=DATA_SEED,
    )
    images = dev.subset(splits[split])
    record = train_surrogate(spec, images, cache, device="cpu")
    model = load_surrogate(record, spec, "cpu")
    return record, model, images


def stage_data(
    stage: str, data_dir: Path, n_test: int, max_per_half: int | None
) -> tuple[str, Images, dict, Images, str]:
    """A stage's training length (`short` / `converged`), development images, d1/d2 (capped), test images and
    the digest its cache keys use. Stages: pneumo32-*, kermany64-*, kermany128-* (the patient-level file at
    that size)."""
    dataset, kind = stage.split("-")
    if dataset == "pneumo32":
        dev, splits, test, digest = pneumo32(data_dir, n_test)
    else:
        dev, splits, test, digest = kermany(data_dir, n_test, int(dataset.removeprefix("kermany")))
    splits = {name: cap_split(splits[name], dev.groups, max_per_half) for name in ("d1", "d2")}
    return kind, dev, splits, test, f"{digest}:cap{max_per_half}"  # the key names the images models learn from


def run_stage(
    stage: str,
    data_dir: Path,
    cache: Path,
    n_test: int,
    families: tuple[str, ...],
    log,
    save,
    max_per_half: int | None,
    bn_modes: tuple[str, ...] = ("eval", "recal"),
) -> dict:
    """Train each family's target and surrogate in turn; after each family, fill in every cell whose surrogate
    and target are both trained (a cut-short run still reports), calling `save(out)`."""
    kind, dev, splits, test, digest = stage_data(stage, data_dir, n_test, max_per_half)
    size = int(dev.x.shape[-1])
    models, crafted, out = (
        {},
        {},
        {
            "stage": stage,
            "image_size": size,
            "n_test": len(test),
            "n_test_pos": int(test.y.sum()),
            "n_d1": len(splits["d1"]),
            "n_d2": len(splits["d2"]),
            "models": [],
            "cells": [],
        },
    )
    done: set[tuple] = set()
    for arch in families:
        for role in ("target", "surrogate"):
            t0 = time.perf_counter()
            record, model, images = train(kind, arch, role, dev, splits, size, digest, cache)
            recal = recalibrate_bn(model, images.x)
            clean = predict_scores(model, test.x, "binary", "cpu")
            models[(arch, role)] = {
                "eval": model,
                "recal": recal,
                "clean": clean,
                "grad": {bn: input_gradients(m, test.x, test.y) for bn, m in (("eval", model), ("recal", recal))},
            }
            entry = {
                "arch": arch,
                "role": role,
                "stop_reason": record.stop_reason,
                "epochs_run": record.epochs_run,
                "best_epoch": record.best_epoch,
                "val_auc": record.val_auc,
                "train_seconds": record.train_seconds,
                "test_auc_bn_eval": auc(test.y, clean),
                "test_auc_bn_recal": auc(test.y, predict_scores(recal, test.x, "binary", "cpu")),
                "curve": [asdict(e) for e in record.curve],
            }
            out["models"].append(entry)
            log(
                f"{stage} {arch} {role}: {record.stop_reason} after {record.epochs_run} ep (best {record.best_epoch}), "
                f"val {record.val_auc:.3f}, test {entry['test_auc_bn_eval']:.3f} / recal "
                f"{entry['test_auc_bn_recal']:.3f}, {time.perf_counter() - t0:.0f}s"
            )
        for bn in bn_modes:
            surrogate = models[(arch, "surrogate")][bn]
            how = Crafting(n_logits=2, multilabel=False, batch_size=64, seed=DATA_SEED, device="cpu")
            for eps in EPSILONS_PM1:
                t0 = time.perf_counter()
                x_adv = ATTACK.craft([surrogate], test.x, test.y, (eps,), how)[eps].x_adv
                white = auc(test.y, predict_scores(surrogate, x_adv, "binary", "cpu"))
                crafted[(arch, bn, eps)] = (x_adv, control_noise(test.x, x_adv, seed=DATA_SEED), white)
                log(
                    f"{stage} PGD on {arch} bn={bn} eps={eps}: white-box AUC {white:.3f} ({time.perf_counter() - t0:.0f}s)"
                )
        for (s_arch, bn, eps), (x_adv, x_ctrl, white) in crafted.items():
            for t_arch in [a for a, role in models if role == "target"]:
                if (s_arch, t_arch, bn, eps) in done:
                    continue
                done.add((s_arch, t_arch, bn, eps))
                target = models[(t_arch, "target")]  # the deployed target: eval mode, as exported
                paired = bootstrap_paired_auc(
                    test.y,
                    target["clean"],
                    predict_scores(target["eval"], x_adv, "binary", "cpu"),
                    predict_scores(target["eval"], x_ctrl, "binary", "cpu"),
                    resamples=1000,
                    seed=DATA_SEED,
                )
                out["cells"].append(
                    {
                        "surrogate": s_arch,
                        "target": t_arch,
                        "bn": bn,
                        "epsilon_pm1": eps,
                        "surrogate_white_box_auc": white,
                        "gradient_cosine": mean_cosine(
                            models[(s_arch, "surrogate")]["grad"][bn], target["grad"]["eval"]
                        ),
                        **asdict(paired),
                    }
                )
                log(
                    f"{stage} {s_arch} -> {t_arch} bn={bn} eps={eps}: relative AUC {paired.relative.point:.2f} "
                    f"[{paired.relative.low:.2f}, {paired.relative.high:.2f}], control {paired.relative_control.point:.2f}, "
                    f"gradient cosine {out['cells'][-1]['gradient_cosine']:.3f}"
                )
        save(out)
    return out


SHORT_NAMES = {
    "efficientnet_lite0": "Lite0",
    "mobilenet_v2": "MNv2",
    "resnet18": "RN18",
    "densenet121": "DN121",
    "tiny_cnn": "tiny",
}


def render(results: dict) -> str:
    """Markdown tables of a results file: the models, then every transfer cell."""
    lines = [
        "| stage | model | role | stop | epochs (best) | val AUC | test AUC (BN eval / recal) |",
        "|---|---|---|---|---|---|---|",
    ]
    stages = [k for k in results if k != "settings"]
    for stage in stages:
        for m in results[stage]["models"]:
            lines.append(
                f"| {stage} | {SHORT_NAMES[m['arch']]} | {m['role']} | {m['stop_reason']} | {m['epochs_run']} "
                f"({m['best_epoch']}) | {m['val_auc']:.3f} | {m['test_auc_bn_eval']:.3f} / "
                f"{m['test_auc_bn_recal']:.3f} |"
            )
    lines += [
        "",
        "| stage | surrogate → target | BN | ε | white-box AUC | target clean → adv AUC | relative AUC [95% CI] "
        "| control relative | adv.-specific drop [95% CI] | grad. cos |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stage in stages:
        for c in results[stage]["cells"]:
            r, d = c["relative"], c["adversarial_specific_drop"]
            lines.append(
                f"| {stage} | {SHORT_NAMES[c['surrogate']]} → {SHORT_NAMES[c['target']]} | {c['bn']} | "
                f"{c['epsilon_pm1']:g} | {c['surrogate_white_box_auc']:.2f} | {c['clean']['point']:.3f} → "
                f"{c['adversarial']['point']:.3f} | {r['point']:.2f} [{r['low']:.2f}, {r['high']:.2f}] | "
                f"{c['relative_control']['point']:.2f} | {d['point']:.3f} [{d['low']:.3f}, {d['high']:.3f}] | "
                + (f"{c['gradient_cosine']:.3f} |" if "gradient_cosine" in c else "– |")
            )
    cosines = [(stage, c) for stage in stages for c in results[stage].get("gradient_cosines", [])]
    if cosines:
        lines += ["", "| stage | surrogate → target | BN | input-gradient cosine |", "|---|---|---|---|"]
        lines += [
            f"| {stage} | {SHORT_NAMES[c['surrogate']]} → {SHORT_NAMES[c['target']]} | {c['bn']} | "
            f"{c['gradient_cosine']:.3f} |"
            for stage, c in cosines
        ]
    return "\n".join(lines)


def gradient_cosines(
    stage: str, data_dir: Path, cache: Path, n_test: int, families: tuple[str, ...], max_per_half: int | None
) -> list[dict]:
    """Mean input-gradient cosine of every (surrogate, target) pair of a stage, from the cached models."""
    kind, dev, splits, test, digest = stage_data(stage, data_dir, n_test, max_per_half)
    grads = {}
    for arch in families:
        for role in ("target", "surrogate"):
            _, model, images = train(kind, arch, role, dev, splits, int(dev.x.shape[-1]), digest, cache)
            grads[(arch, role, "eval")] = input_gradients(model, test.x, test.y)
            if role == "surrogate":
                grads[(arch, role, "recal")] = input_gradients(recalibrate_bn(model, images.x), test.x, test.y)
    return [
        {
            "surrogate": s_arch,
            "target": t_arch,
            "bn": bn,
            "gradient_cosine": mean_cosine(grads[(s_arch, "surrogate", bn)], grads[(t_arch, "target", "eval")]),
        }
        for s_arch in families
        for t_arch in families
        for bn in ("eval", "recal")
    ]


def families_of(stage: str, args: argparse.Namespace) -> list[str]:
    """The architectures a stage trains: its own option where it has one, else --families."""
    own = {
        "pneumo32-short": args.families_short,
        "kermany64-converged": args.families_64,
        "kermany128-converged": args.families_128,
    }
    return own.get(stage, args.families)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path, help="folder holding pneumoniamnist.npz and chestxray_kermany_128.npz")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--render", action="store_true", help="print the tables of --out as markdown and exit")
    parser.add_argument("--merge-from", type=Path, help="append another run's results (same stages) to --out and exit")
    parser.add_argument(
        "--gradients-only",
        action="store_true",
        help="add every pair's input-gradient cosine to the stages in --out, from cached models",
    )
    parser.add_argument("--cache", type=Path, required=True, help="surrogate cache (outside the repository)")
    parser.add_argument("--stages", nargs="+", default=["pneumo32-short", "pneumo32-converged", "kermany64-converged"])
    parser.add_argument(
        "--families", nargs="+", default=["mobilenet_v2", "efficientnet_lite0", "resnet18", "densenet121"]
    )
    parser.add_argument("--families-short", nargs="+", default=["efficientnet_lite0", "mobilenet_v2"])
    parser.add_argument("--families-64", nargs="+", default=["mobilenet_v2", "resnet18"])
    parser.add_argument("--families-128", nargs="+", default=["resnet18", "mobilenet_v2"])
    parser.add_argument(
        "--bn", nargs="+", choices=["eval", "recal"], default=["eval", "recal"], help="BatchNorm modes to attack with"
    )
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    parser.add_argument("--max-per-half", type=int, default=None, help="cap d1 and d2 at about this many images")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.out.read_text())))
        return
    torch.set_num_threads(args.threads)  # 1 on a shared machine: two threads spin-wait each other when oversubscribed
    started = time.perf_counter()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", flush=True)

    def save(stage_out: dict) -> None:
        run = {  # this invocation's settings, kept with the stage it wrote
            "max_per_half": args.max_per_half,
            "n_test": args.n_test,
            "bn_modes": list(args.bn),
            "device": f"cpu, {args.threads} torch thread(s), 2-core machine",
        }
        results[stage_out["stage"]] = {**stage_out, "run": run, "seconds": time.perf_counter() - started}
        results.setdefault("settings", {}).update(
            {
                "short": SHORT.model_dump(mode="json"),
                "converged": CONVERGED.model_dump(mode="json"),
                "attack": ATTACK.model_dump(mode="json"),
                "epsilons_pm1": list(EPSILONS_PM1),
                "target_seed": TARGET_SEED,
                "surrogate_seed": SURROGATE_SEED,
                "data_seed": DATA_SEED,
            }
        )
        args.out.write_text(json.dumps(results, indent=1))

    if args.merge_from:  # a stage run in another process: append its models, cells and cosines not yet here
        for stage, other in json.loads(args.merge_from.read_text()).items():
            if stage == "settings" or stage not in results:
                continue
            for key, fields in (
                ("models", ("arch", "role")),
                ("cells", ("surrogate", "target", "bn", "epsilon_pm1")),
                ("gradient_cosines", ("surrogate", "target", "bn")),
            ):
                here = results[stage].setdefault(key, [])
                seen = {tuple(e[f] for f in fields) for e in here}
                here += [e for e in other.get(key, []) if tuple(e[f] for f in fields) not in seen]
        args.out.write_text(json.dumps(results, indent=1))
        return

    if args.gradients_only:
        for stage in args.stages:
            families = families_of(stage, args)
            results[stage]["gradient_cosines"] = gradient_cosines(
                stage, args.data_dir, args.cache, args.n_test, tuple(families), args.max_per_half
            )
            args.out.write_text(json.dumps(results, indent=1))
            log(
                f"gradient cosines of {stage}: "
                + ", ".join(
                    f"{c['surrogate']}->{c['target']}/{c['bn']} {c['gradient_cosine']:.3f}"
                    for c in results[stage]["gradient_cosines"]
                )
            )
        return

    for stage in args.stages:
        families = families_of(stage, args)
        run_stage(
            stage,
            args.data_dir,
            args.cache,
            args.n_test,
            tuple(families),
            log,
            save,
            args.max_per_half,
            tuple(args.bn),
        )
        log(f"stage {stage} written to {args.out}")


if __name__ == "__main__":
    main()
