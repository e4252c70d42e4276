"""A page of zoomed examples per modality at every candidate ε, as the paper chose ε (by looking, under an SSIM
bound):

    python examples/reproduce_paper/epsilon_examples.py pneumonia|retina|derma|kermany [--data DIR] [--attacks fgsm pgd]

Run it after `reproduce.py MODALITY` has run the perturbation_degree experiment, with the same --cache, --work,
--image-size and --test-limit: for each perturbation_degree target it loads that experiment's seed-0 surrogate
from the cache (training it, and saying so, if the cache lacks it), crafts each attack (default FGSM, as the
paper's Fig. 1, and PGD) at every ε of the experiment's
grid on the test images the audit's report shows (`medaudit.execute.example_indices`: the first positives, not
picked by effect), and writes `<work>/<modality>/epsilon_examples__<target>__<attack>.png`: per image, the original and
each ε's adversarial image, full size and as a 4× nearest-neighbour centre crop, each with its SSIM.

The page stays outside the repository: it shows test images, which are copies of the data and may not be
committed. The mean SSIM over all test images at each ε, which the choice of ε rests on, is in the document; to
show where the SSIM bound would bind when it does not inside the paper's grid, the script also measures FGSM's
mean SSIM on every test image out to ε 0.20 and writes those numbers (no images) to
`docs/reproduction/<modality>/ssim_curve.json`, which the document renders.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from protocol import EXPERIMENTS, SSIM_CURVE, SsimCurve, SsimCurves, target_tag
from reproduce import add_common_arguments, common, previous_info, scenario_for

from medaudit.attacks import craft_adversarial
from medaudit.cache import Cache
from medaudit.data import GREY_LEVELS_PER_PM1, grey_from_pm1
from medaudit.execute import example_indices
from medaudit.files import atomic_write
from medaudit.metrics import mean_ssim, ssim_per_image
from medaudit.plan import RunContext, live, make_plan
from medaudit.report.images import DISPLAY_PX, ZOOM, centre_crop
from medaudit.surrogates import load_surrogate, train_surrogate

EXPERIMENT = "perturbation_degree"  # the experiment whose grid of ε the paper chose from
CAPTION_PX = 34  # room for two lines of caption under each panel
GAP_PX = 6  # between panels
FONT_PX = 13
TITLE_PX = 3 * FONT_PX + 2 * GAP_PX  # two lines of title (the default font has no ε: captions say eps)
# FGSM's mean SSIM past the paper's grid (0.01-0.06), to find where the SSIM bound would bind
EXTENDED_EPSILONS = tuple(round(0.01 * k, 2) for k in range(1, 21))  # 0.01 ... 0.20, [-1, 1] units
EPSILONS_PER_CALL = 5  # FGSM images held at once (each ε is a copy of the test set)


def first_below(curve: tuple[tuple[float, float], ...], bound: float) -> float | None:
    """The smallest ε whose mean SSIM is below `bound`; None when every ε keeps it."""
    return next((eps for eps, ssim in sorted(curve) if ssim < bound), None)


def panel(x_pm1: np.ndarray) -> Image.Image:
    """(C, H, W) in [-1, 1] -> an 8-bit image, grey or RGB."""
    arr = grey_from_pm1(x_pm1).transpose(1, 2, 0)
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def enlarged(image: Image.Image) -> Image.Image:
    """To DISPLAY_PX by an integer factor, pixels repeated (never interpolated)."""
    factor = max(1, DISPLAY_PX // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def page(originals: np.ndarray, adversarial: dict[float, np.ndarray], title: str) -> Image.Image:
    """Rows: images; columns: original then each ε, each as full image and centre crop; SSIM under each."""
    font = ImageFont.load_default(size=FONT_PX)
    columns = [("original", originals, None)] + [
        (f"eps {eps:g} ({eps * GREY_LEVELS_PER_PM1:.2g} grey levels)", x, ssim_per_image(originals, x))
        for eps, x in adversarial.items()
    ]
    side = enlarged(panel(originals[0])).width
    cell_w, cell_h = 2 * side + GAP_PX, side + CAPTION_PX
    width = len(columns) * (cell_w + 2 * GAP_PX)
    height = TITLE_PX + len(originals) * (cell_h + GAP_PX) + GAP_PX
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.multiline_text((GAP_PX, GAP_PX), title, fill="black", font=font, spacing=2)
    for i in range(len(originals)):
        top = TITLE_PX + i * (cell_h + GAP_PX)
        for j, (label, images, ssim) in enumerate(columns):
            left = j * (cell_w + 2 * GAP_PX) + GAP_PX
            image = panel(images[i])
            sheet.paste(enlarged(image), (left, top))
            sheet.paste(
                enlarged(centre_crop(image, ZOOM)).resize((side, side), Image.Resampling.NEAREST),
                (left + side + GAP_PX, top),
            )
            caption = label if ssim is None else f"{label}\nSSIM {ssim[i]:.3f}"
            draw.multiline_text((left, top + side + 2), caption, fill="black", font=font, spacing=2)
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument(
        "--attacks",
        nargs="+",
        default=["fgsm", "pgd"],
        help="perturbation_degree attacks by name (default: the paper's)",
    )
    args = parser.parse_args(argv)
    c = common(parser, args)
    modality, settings = c.modality, c.settings
    scenario = scenario_for(EXPERIMENT, modality, settings)
    attacks = [a for a in scenario.attacks if a.name in args.attacks]
    if len(attacks) != len(set(args.attacks)):
        parser.error(
            f"--attacks {' '.join(args.attacks)}: {EXPERIMENT} runs {', '.join(a.name for a in scenario.attacks)}"
        )
    recorded = previous_info(c.results)
    if recorded is not None and recorded.settings != settings:
        parser.error(
            f"{c.results}: its results were made with {recorded.settings.model_dump()}; give the same "
            "--image-size and --test-limit"
        )
    fgsm = next(a for a in scenario.attacks if a.name == "fgsm")
    work = c.work
    curves = []
    for arch, init in EXPERIMENTS[EXPERIMENT]:
        tag = target_tag(arch, init, scenario.target.trained_on)
        target_path = work / f"{tag}.onnx"
        if not target_path.is_file():
            parser.error(f"{target_path} not found: run reproduce.py {modality.key} with the same --work first")
        ctx = RunContext(
            scenario=scenario,
            target_path=str(target_path),
            data_source=str(c.data_path),
            device=c.device,
            batch_size=64,
            cache_dir=str(c.cache),
            torch_threads=torch.get_num_threads(),
        )
        lv = live(ctx)
        plan = make_plan(ctx, lv.target, lv.data, lv.test_sha256)
        job = next(j for j in plan.surrogates if j.row.seed == 0)
        record = train_surrogate(
            job.spec, lv.data.split(job.spec.split), Cache(ctx.cache_dir).root / "surrogate", device=c.device
        )
        if not record.from_cache:
            print(
                f"note: {job.id} was not in {c.cache}; trained it now from the same spec "
                "(the code behind the cache changed since, or the audit ran elsewhere)"
            )
        test = lv.data.test
        shown = example_indices(test.y)
        x = test.x[shown]
        model = load_surrogate(record, job.spec, c.device)
        curve = []
        for start in range(0, len(EXTENDED_EPSILONS), EPSILONS_PER_CALL):
            chunk = EXTENDED_EPSILONS[start : start + EPSILONS_PER_CALL]
            perturbed = craft_adversarial(
                fgsm,
                [model],
                test.x,
                test.y,
                epsilons_pm1=chunk,
                n_logits=job.spec.n_logits,
                multilabel=False,
                batch_size=64,
                seed=scenario.seed,
                device=c.device,
            )
            curve += [(eps, mean_ssim(test.x, perturbed[eps].x_adv)) for eps in chunk]
        bound = scenario.perceptibility.min_mean_ssim
        curves.append(
            SsimCurve(
                target=tag,
                surrogate_id=job.id,
                attack="fgsm",
                test_images=len(test),
                bound=bound,
                curve=tuple(curve),
                first_below_bound=first_below(tuple(curve), bound),
            )
        )
        print(f"{tag}: FGSM mean SSIM first below {bound:g} at ε {curves[-1].first_below_bound}")
        for attack in attacks:
            perturbed = craft_adversarial(
                attack,
                [model],
                x,
                test.y[shown],
                epsilons_pm1=scenario.epsilons_pm1,
                n_logits=job.spec.n_logits,
                multilabel=False,
                batch_size=64,
                seed=scenario.seed,
                device=c.device,
            )
            title = (
                f"{modality.title}: {attack.name} crafted on {job.id} (attacking the {tag} target)\n"
                f"{settings.image_size} px, test images {', '.join(map(str, shown))}; left full size, right the "
                f"{ZOOM}x centre crop"
            )
            out = work / f"epsilon_examples__{tag}__{attack.name}.png"
            page(x, {eps: p.x_adv for eps, p in perturbed.items()}, title).save(out)
            print(f"wrote {out}")
    path = c.results / SSIM_CURVE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, SsimCurves(modality=modality.key, settings=settings, curves=tuple(curves)).model_dump_json(indent=1)
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
