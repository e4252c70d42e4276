"""Does transfer between random-init models grow with the number of training images? (data size)

Bortsova et al. (2021) found random-init surrogate -> random-init target transfer strong when both learnt from
tens of thousands of images (Table 3: 47-86 % of clean AUC) and the targets near-immune when they learnt from a
tenth of that (Table 5: 96-100 %). docs/random_init_transfer.md found random-init pairs near-immune everywhere,
but no model there saw more than ~2,300 images. Here both sides grow together on the patient-level chest X-rays
(chestxray_kermany_128.npz, train + val as the development set, resized to 64 px): the development set is split
by patient into halves d1 (targets) and d2 (surrogates), and each side learns from n in {300, 600, 1200, all of
its half} images: the first whole patients of a seeded order of the half's patients until they reach n images,
so 300 ⊂ 600 ⊂ 1200 ⊂ all and differences come from size, not from the draw. All models are random init,
trained to a validation-AUC plateau with medaudit's defaults: ResNet-18 at every n, MobileNetV2 at the smallest
and the largest, 3 seeds per side (targets 1000-1002, surrogates 0-2). PGD (ART, step 0.01, 20 iterations, no
random start, as the engine runs it) and FGSM at ε 0.02-0.12 ([-1, 1] units; about 1.5x the ε where FGSM's mean
SSIM crosses 0.8, near 0.085) are crafted once per surrogate on 400 stratified test images and scored on the 3
targets of the same architecture and n (9 pairs), against the control (the same perturbation, pixels shuffled).
Intervals are 95 % patient-clustered bootstrap (1,000 resamples); the mean over the 9 pairs takes its interval
from the same resamples applied to every pair.

    python experiments/data_size.py /work/shared/data --out docs/data_size.json --cache /tmp/ds-cache --threads 2
    python experiments/data_size.py --out docs/data_size.json --render

`--modality pneumonia` runs the same design on PneumoniaMNIST at 32 px (28 px source; no patient ids, so splits and
the bootstrap are image-level), ResNet-18 only, ε 0.02-0.10 (FGSM's mean SSIM crosses 0.8 near 0.09 there), on
all 624 test images with `--n-test 624`; it writes each block's per-image scores (scores only, no labels) beside the
JSON, for `reproduction.growth`'s paired intervals with Holm across sizes:

    python experiments/data_size.py /work/shared/data --modality pneumonia --n-test 624 \
        --out docs/data_size_pneumonia.json --cache /tmp/ds-cache --threads 2

(--threads 1 while another job holds a core: two threads then spin-wait each other, up to 18x slower per step.)

Writes the JSON after every (architecture, n) block, so a cut-short run still reports; `--sizes` / `--archs` run
part of the grid into the same file (same settings only); trained models are cached, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from medaudit.attackers.surrogates import SurrogateSpec, load_surrogate, predict_scores, train_surrogate
from medaudit.attacks import FGSM, PGD, Crafting, control_noise
from medaudit.core.cache import code_version
from medaudit.core.files import atomic_write, sha256_file
from medaudit.core.metrics import Interval, auc, bootstrap_aucs, bootstrap_paired_auc, mean_ssim, resample_counts
from medaudit.data.audit_data import Images, make_splits, stratified_subset, to_canonical
from medaudit.scenario.threat_model import TrainingSection

SIZES = ("300", "600", "1200", "all")  # training images per side; `all`: the whole half


@dataclass(frozen=True)
class Setting:
    """What one modality's run of the design reads and runs."""

    data_file: str
    image_size: int  # px, resized with to_canonical (bilinear)
    patient_level: bool  # False: the file has no patient ids, each image is its own group
    grid: dict[str, tuple[str, ...]]  # architecture -> the sizes it runs at
    epsilons_pm1: tuple[float, ...]  # L-inf, [-1, 1] units, past where FGSM's mean SSIM crosses 0.8


SETTINGS = {
    "kermany": Setting(
        "chestxray_kermany_128.npz",
        64,
        True,
        {"resnet18": SIZES, "mobilenet_v2": (SIZES[0], SIZES[-1])},
        (0.02, 0.04, 0.06, 0.08, 0.10, 0.12),
    ),
    "pneumonia": Setting("pneumoniamnist.npz", 32, False, {"resnet18": SIZES}, (0.02, 0.04, 0.06, 0.08, 0.10)),
}
ATTACKS = {"pgd": PGD(name="pgd", step_pm1=0.01, iterations=20), "fgsm": FGSM(name="fgsm")}
SIDES = {"target": ("d1", (1000, 1001, 1002)), "surrogate": ("d2", (0, 1, 2))}  # role -> (half, training seeds)
DATA_SEED = 0  # d1/d2 split, patient order within a half, test subset, attacks, control noise, bootstrap
RESAMPLES, CONFIDENCE = 1000, 0.95
# the fields of each SurrogateRecord kept in the JSON
RECORD_FIELDS = "id stop_reason epochs_run best_epoch val_auc train_seconds n_train n_val from_cache".split()


def load(
    data_dir: Path, n_test: int, setting: Setting
) -> tuple[Images, dict[str, np.ndarray], Images, str, np.ndarray]:
    """Development images (train + val), the d1/d2 halves (indices, disjoint by patient), the stratified test
    subset (patient ids as groups; image ids where the file has none), the file's identity for cache keys and the
    test subset's indices into the file's test images."""
    path = data_dir / setting.data_file
    with np.load(path) as npz:
        dev_x = np.concatenate([npz["train_images"], npz["val_images"]])
        dev_y = np.concatenate([npz["train_labels"], npz["val_labels"]]).reshape(-1).astype(np.int64)
        test_x, test_y = npz["test_images"], npz["test_labels"].reshape(-1).astype(np.int64)
        if setting.patient_level:
            dev_g = np.concatenate([npz["train_patient_ids"], npz["val_patient_ids"]])
            test_g = npz["test_patient_ids"]
        else:
            dev_g, test_g = np.arange(len(dev_y)), np.arange(len(test_y))
    keep = stratified_subset(test_y, n_test, DATA_SEED)
    dev = Images(to_canonical(dev_x, setting.image_size), dev_y, dev_g)
    test = Images(to_canonical(test_x[keep], setting.image_size), test_y[keep], test_g[keep])
    splits = make_splits(dev_g, DATA_SEED)
    assert not set(dev_g[splits["d1"]]) & set(dev_g[splits["d2"]]), "d1 and d2 share a patient"
    return dev, {half: splits[half] for half in ("d1", "d2")}, test, f"{path.name}:{path.stat().st_size}", keep


def nested_subset(index: np.ndarray, groups: np.ndarray, n: int | None) -> np.ndarray:
    """The images of a half's first patients, in a seeded order of its patients, until they reach `n` images
    (the whole half when None). The order depends on the half only, so a larger n holds every smaller n's images."""
    if n is None:
        return index
    patients, counts = np.unique(groups[index], return_counts=True)
    order = np.random.default_rng(DATA_SEED).permutation(len(patients))
    taken = int(np.searchsorted(np.cumsum(counts[order]), n)) + 1  # the shortest prefix holding >= n images
    return index[np.isin(groups[index], patients[order[:taken]])]


def train_model(
    arch: str, half: str, seed: int, images: Images, digest: str, training: TrainingSection, cache: Path, size: int
):
    spec = SurrogateSpec(
        arch=arch,
        init="random",
        split=half,
        seed=seed,
        training=training,
        task="binary",
        n_logits=2,
        in_channels=1,
        image_size=size,
        data_sha256=digest,
        split_seed=DATA_SEED,
    )
    record = train_surrogate(spec, images, cache, device="cpu")  # carves its own patient-level validation split
    return record, load_surrogate(record, spec, "cpu")


def mean_interval(points: list[float], resampled: list[np.ndarray]) -> dict:
    """The mean over pairs of a statistic, with the percentile interval of its mean over pairs within each
    resample: every pair's values come from the same resamples of test patients."""
    values = np.mean(resampled, axis=0)
    finite = values[np.isfinite(values)]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (np.nan, np.nan)
    interval = Interval(
        float(np.mean(points)), float(low), float(high), CONFIDENCE, values.size, values.size - finite.size
    )
    return asdict(interval)


def run_block(arch, label, sides, dev: Images, halves: dict, test: Images, file_id: str, training, cache, log, setting):
    """Train the targets and surrogates (`sides`: role -> (half, seeds)) of one architecture at one size, attack
    with every surrogate, and score every pair; returns the block's record and its per-image scores (name ->
    (N,) scores: `clean/t<seed>`, `<attack>/eps<ε>/s<seed>/t<seed>/adversarial` and `.../control`)."""
    started = time.perf_counter()
    n = None if label == "all" else int(label)
    block = {"arch": arch, "n_requested": label, "sides": {}, "models": [], "attacks": [], "pairs": [], "aggregate": []}
    block["seeds"] = {role: list(seeds) for role, (_, seeds) in sides.items()}
    models, scores = {}, {}
    for role, (half, seeds) in sides.items():
        index = nested_subset(halves[half], dev.groups, n)
        images = dev.subset(index)
        block["sides"][role] = {
            "half": half,
            "n_images": len(images),
            "n_patients": len(np.unique(images.groups)),
            "n_positive": int(images.y.sum()),
        }
        ids_sha = hashlib.sha256(np.ascontiguousarray(index, dtype=np.int64).tobytes()).hexdigest()[:16]
        split = "patient" if setting.patient_level else "image"
        digest = f"{file_id}:{split}-split-seed{DATA_SEED}:{half}:n{label}:{ids_sha}"  # the exact images learnt from
        for seed in seeds:
            record, model = train_model(arch, half, seed, images, digest, training, cache, setting.image_size)
            clean = predict_scores(model, test.x, "binary", "cpu")
            models[(role, seed)] = (model, clean)
            if role == "target":
                scores[f"clean/t{seed}"] = clean
            entry = {"role": role, "seed": seed, "test_auc": auc(test.y, clean)} | {
                field: getattr(record, field) for field in RECORD_FIELDS
            }
            entry["curve"] = [e.model_dump(mode="json") for e in record.curve]
            block["models"].append(entry)
            log(
                f"{arch} n{label} {role} s{seed}: {record.stop_reason} after {record.epochs_run} ep, val "
                f"{record.val_auc:.3f}, test {entry['test_auc']:.3f}, {record.n_train}+{record.n_val} images, "
                f"{record.train_seconds:.0f}s{' (cached)' if record.from_cache else ''}"
            )
    trained = time.perf_counter()
    counts = resample_counts(len(test), resamples=RESAMPLES, seed=DATA_SEED, groups=test.groups)  # as the pairs'
    cells = defaultdict(list)  # (attack, eps) -> one entry per pair
    for s_seed in sides["surrogate"][1]:
        surrogate = models[("surrogate", s_seed)][0]
        for name, attack in ATTACKS.items():
            t0 = time.perf_counter()
            how = Crafting(n_logits=2, multilabel=False, batch_size=64, seed=DATA_SEED, device="cpu")
            crafted = attack.craft([surrogate], test.x, test.y, setting.epsilons_pm1, how)
            craft_seconds = time.perf_counter() - t0
            for eps, perturbed in crafted.items():
                x_adv = perturbed.x_adv
                x_ctrl = control_noise(test.x, x_adv, seed=DATA_SEED)
                block["attacks"].append(
                    {
                        "surrogate_seed": s_seed,
                        "attack": name,
                        "epsilon_pm1": eps,
                        "white_box_auc": auc(test.y, predict_scores(surrogate, x_adv, "binary", "cpu")),
                        "ssim": mean_ssim(test.x, x_adv),
                        "max_abs_delta": perturbed.max_abs_delta,
                        "craft_seconds_all_eps": craft_seconds,
                    }
                )
                for t_seed in sides["target"][1]:
                    target, clean = models[("target", t_seed)]
                    adv = predict_scores(target, x_adv, "binary", "cpu")
                    ctrl = predict_scores(target, x_ctrl, "binary", "cpu")
                    scores[f"{name}/eps{eps:g}/s{s_seed}/t{t_seed}/adversarial"] = adv
                    scores[f"{name}/eps{eps:g}/s{s_seed}/t{t_seed}/control"] = ctrl
                    paired = bootstrap_paired_auc(
                        test.y, clean, adv, ctrl, resamples=RESAMPLES, seed=DATA_SEED, groups=test.groups
                    )
                    block["pairs"].append(
                        {"surrogate_seed": s_seed, "target_seed": t_seed, "attack": name, "epsilon_pm1": eps}
                        | asdict(paired)
                    )
                    a, c, ref = (bootstrap_aucs(test.y, s, counts) for s in (adv, ctrl, clean))
                    with np.errstate(invalid="ignore", divide="ignore"):  # per stat: (point, resampled values)
                        cells[(name, eps)].append(
                            {
                                "relative": (paired.relative.point, a / ref),
                                "relative_control": (paired.relative_control.point, c / ref),
                                "adversarial_specific_drop": (paired.adversarial_specific_drop.point, c - a),
                            }
                        )
            log(
                f"{arch} n{label} {name} on surrogate s{s_seed}: crafted in {craft_seconds:.0f}s, scored in "
                f"{time.perf_counter() - t0 - craft_seconds:.0f}s; white-box AUC "
                + ", ".join(f"{a['white_box_auc']:.2f}" for a in block["attacks"][-len(setting.epsilons_pm1) :])
            )
    for (name, eps), entries in cells.items():
        shown = [a for a in block["attacks"] if a["attack"] == name and a["epsilon_pm1"] == eps]
        means = {stat: mean_interval(*zip(*(e[stat] for e in entries))) for stat in entries[0]}
        block["aggregate"].append(
            {"attack": name, "epsilon_pm1": eps, "n_pairs": len(entries)}
            | means
            | {
                "mean_white_box_auc": float(np.mean([a["white_box_auc"] for a in shown])),
                "mean_ssim": float(np.mean([a["ssim"] for a in shown])),
            }
        )
        if name == "pgd":
            r = block["aggregate"][-1]["relative"]
            log(f"{arch} n{label} PGD ε {eps:g}: mean relative AUC {r['point']:.3f} [{r['low']:.3f}, {r['high']:.3f}]")
    done = time.perf_counter()
    block["seconds"] = {"train": trained - started, "attack_and_score": done - trained, "total": done - started}
    return block, scores


def code_info() -> dict:
    """The commit of the code that ran, whether its tree had changes, and this script's own hash (it may be
    uncommitted)."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    changes = git("status", "--porcelain").splitlines()
    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "dirty": bool(changes),
        "changes": changes[:20],
        "script_sha256": sha256_file(__file__),
        "medaudit_code_version": code_version("adversarial"),  # the modules that train and attack
    }


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return {
        "platform": platform.platform(),
        "processor": names[0] if names else platform.processor(),
        "logical_cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


SHORT_NAMES = {"resnet18": "RN18", "mobilenet_v2": "MNv2"}


def render(results: dict) -> str:
    """Markdown tables of a results file: the models per block, then per attack the mean over pairs of the relative
    AUC and of the adversarial-specific drop at each ε, and the surrogates' white-box AUC and SSIM."""
    grid = results["settings"]["grid"]
    order = {(arch, label): i for i, (arch, label) in enumerate((a, s) for a in grid for s in grid[a])}
    blocks = sorted(results["blocks"].values(), key=lambda b: order[(b["arch"], b["n_requested"])])
    eps = results["settings"]["epsilons_pm1"]

    def spread(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})"

    lines = [
        "| arch | n | images d1 / d2 (patients) | pairs | target clean AUC, mean (range) | surrogate clean AUC | "
        "epochs (best), targets; surrogates | stops |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in blocks:
        t, s = (b["sides"][role] for role in ("target", "surrogate"))
        by_role = {role: [m for m in b["models"] if m["role"] == role] for role in SIDES}
        epochs = "; ".join(", ".join(f"{m['epochs_run']} ({m['best_epoch']})" for m in by_role[role]) for role in SIDES)
        stops = sorted({m["stop_reason"] for m in b["models"]})
        lines.append(
            f"| {SHORT_NAMES[b['arch']]} | {b['n_requested']} | {t['n_images']} ({t['n_patients']}) / "
            f"{s['n_images']} ({s['n_patients']}) | {len(by_role['target']) * len(by_role['surrogate'])} | {spread([m['test_auc'] for m in by_role['target']])} | "
            f"{spread([m['test_auc'] for m in by_role['surrogate']])} | {epochs} | {', '.join(stops)} |"
        )
    header = "| arch | n | " + " | ".join(f"ε {e:g}" for e in eps) + " |"
    rule = "|---|---|" + "---|" * len(eps)
    for attack in results["settings"]["attacks"]:
        tables = (
            ("relative AUC (adv / clean), mean over pairs [95% CI]", "relative", "{:.3f} [{:.3f}, {:.3f}]"),
            (
                "adversarial-specific drop (control − adv AUC), mean over pairs [95% CI]",
                "adversarial_specific_drop",
                "{:.3f} [{:.3f}, {:.3f}]",
            ),
            ("surrogates' white-box AUC / mean SSIM", None, "{:.2f} / {:.3f}"),
        )
        for title, key, fmt in tables:
            lines += ["", f"{attack.upper()}: {title}", "", header, rule]
            for b in blocks:
                cells = {a["epsilon_pm1"]: a for a in b["aggregate"] if a["attack"] == attack}
                values = [
                    fmt.format(c[key]["point"], c[key]["low"], c[key]["high"])
                    if key
                    else fmt.format(c["mean_white_box_auc"], c["mean_ssim"])
                    for c in (cells[e] for e in eps)
                ]
                lines.append(f"| {SHORT_NAMES[b['arch']]} | {b['n_requested']} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path, nargs="?", help="folder holding the modality's data file")
    parser.add_argument("--modality", choices=list(SETTINGS), default="kermany", help="which design to run")
    parser.add_argument(
        "--out", type=Path, required=True, help="results JSON; blocks already there are kept, not rerun"
    )
    parser.add_argument("--render", action="store_true", help="print the tables of --out as markdown and exit")
    parser.add_argument("--cache", type=Path, help="model cache (outside the repository)")
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--archs", nargs="+", choices=["resnet18", "mobilenet_v2"], help="default: the grid's")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    parser.add_argument("--n-test", type=int, default=400, help="stratified test images (of 1,170)")
    parser.add_argument(
        "--seeds", type=int, choices=(1, 2, 3), default=3, help="seeds per side (the first K of each; K x K pairs)"
    )
    # smoke checks only, so not in --help: TrainingSection(epochs=K) instead of the defaults
    parser.add_argument("--epochs-cap", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.out.read_text())))
        return
    if args.data_dir is None or args.cache is None:
        parser.error("a run needs DATA_DIR and --cache")
    torch.set_num_threads(args.threads)
    setting = SETTINGS[args.modality]
    training = TrainingSection() if args.epochs_cap is None else TrainingSection(epochs=args.epochs_cap)
    settings = json.loads(
        json.dumps(
            {
                "data_file": setting.data_file,
                "image_size": setting.image_size,
                "grid": setting.grid,
                "sides": SIDES,
                "data_seed": DATA_SEED,
                "n_test": args.n_test,
                "epsilons_pm1": setting.epsilons_pm1,
                "attacks": {name: attack.model_dump(mode="json") for name, attack in ATTACKS.items()},
                "training": training.model_dump(mode="json"),
                "epochs_cap": args.epochs_cap,  # not null: a smoke check, not the experiment
                "bootstrap": {
                    "resamples": RESAMPLES,
                    "confidence": CONFIDENCE,
                    "groups": "test patient ids" if setting.patient_level else "test images",
                },
            }
        )
    )
    results = (
        json.loads(args.out.read_text()) if args.out.is_file() else {"settings": settings, "runs": [], "blocks": {}}
    )
    if results["settings"] != settings:
        parser.error(f"{args.out} holds results of other settings; give another --out")
    started = time.perf_counter()
    run = {
        "argv": sys.argv,
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code": code_info(),
        "machine": machine_info(),
        "blocks": [],
    }
    results["runs"].append(run)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", flush=True)

    dev, halves, test, file_id, test_index = load(args.data_dir, args.n_test, setting)
    per_image = args.out.with_suffix("")  # the blocks' per-image scores, scores only (labels stay in the data file)
    results["data"] = {
        "n_development": len(dev),
        "halves": {h: {"n_images": len(i), "n_patients": len(np.unique(dev.groups[i]))} for h, i in halves.items()},
        "n_test": len(test),
        "n_test_positive": int(test.y.sum()),
        "n_test_patients": len(np.unique(test.groups)),
    }
    log(f"data: {results['data']}")
    for arch in args.archs or list(setting.grid):
        for label in [s for s in setting.grid.get(arch, ()) if s in args.sizes]:
            block_id = f"{arch}-n{label}"
            if block_id in results["blocks"]:  # same settings, checked above: a rerun resumes after the last block
                log(f"{block_id} already in {args.out}; kept")
                continue
            sides = {role: (half, seeds[: args.seeds]) for role, (half, seeds) in SIDES.items()}
            block, scores = run_block(
                arch, label, sides, dev, halves, test, file_id, training, args.cache, log, setting
            )
            per_image.mkdir(parents=True, exist_ok=True)  # for reproduction.growth's paired intervals
            path = per_image / f"{block_id}.npz"
            np.savez_compressed(path, test_index=test_index, **scores)
            block["per_image"] = {"path": f"{per_image.name}/{path.name}", "sha256": sha256_file(path)}
            results["blocks"][block_id] = block | {"run": len(results["runs"]) - 1}
            run["blocks"].append(block_id)
            run["seconds"] = time.perf_counter() - started
            atomic_write(args.out, json.dumps(results, indent=1))
            log(f"{block_id} written to {args.out} ({block['seconds']['total']:.0f}s)")


if __name__ == "__main__":
    main()
