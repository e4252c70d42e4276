"""A page of zoomed examples per modality at every candidate ε, as the paper chose ε (by looking, under an SSIM
bound):

    python -m reproduction.epsilon_examples pneumonia|retina|derma|kermany [--data DIR] [--attacks fgsm pgd]

Run it after `reproduce MODALITY` has run the perturbation_degree experiment, with the same --cache, --work,
--image-size and --test-limit: for each perturbation_degree target it loads that experiment's seed-0 surrogate from
the cache (training it, and saying so, if the cache lacks it), crafts each attack (default FGSM, as the paper's
Fig. 1, and PGD) at every ε of the paper's sweep on the first positive test images (not picked by effect), and
writes `<work>/<modality>/epsilon_examples__<target>__<attack>.png`: per image, the original and each ε's
adversarial image, full size and as a 4× nearest-neighbour centre crop, each with its SSIM.

The page stays outside the repository: it shows test images, copies of the data, which may not be committed. To
show where the SSIM bound would bind, the script also measures FGSM's mean SSIM on every test image out to ε 0.20
and writes those numbers (no images) to `docs/reproduction/<modality>/ssim_curve.json`, which the document renders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from medaudit.attackers.surrogates import load_surrogate
from medaudit.attacks import Crafting
from medaudit.core.files import atomic_write
from medaudit.core.metrics import mean_ssim, ssim_per_image
from medaudit.core.pixels import GREY_LEVELS_PER_PM1, grey_from_pm1
from medaudit.engine.inputs import delivered
from medaudit.engine.plan import RunContext, make_plan
from medaudit.engine.victims import trained
from medaudit.report.images import DISPLAY_PX, ZOOM, centre_crop
from reproduction import paper
from reproduction.protocol import DIFFERENT, EXPERIMENTS, SSIM_CURVE, SsimCurve, SsimCurves, target_tag
from reproduction.reproduce import add_common_arguments, checked_settings, previous_info, scenario_for

EXPERIMENT = "perturbation_degree"  # the experiment whose targets the paper chose ε on
EXAMPLES = 4  # the first positive test images shown
CAPTION_PX = 34  # room for two lines of caption under each panel
GAP_PX = 6  # between panels
FONT_PX = 13
TITLE_PX = 3 * FONT_PX + 2 * GAP_PX  # two lines of title (the default font has no ε: captions say eps)
EXTENDED_EPSILONS = tuple(round(0.01 * k, 2) for k in range(1, 21))  # 0.01 ... 0.20, past the paper's grid
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
    parser.add_argument("--attacks", nargs="+", default=["fgsm", "pgd"], help="perturbation_degree attacks by name")
    args = parser.parse_args(argv)
    modality, data_path, settings = checked_settings(parser, args)
    results, work = args.results / modality.key, args.work / modality.key
    recorded = previous_info(results)
    if recorded is not None and recorded.settings != settings:
        parser.error(f"{results}: its results were made with {recorded.settings.model_dump()}; give the same settings")
    curves = []
    for arch, init in EXPERIMENTS[EXPERIMENT]:
        scenario = scenario_for(EXPERIMENT, modality, settings, DIFFERENT[arch])
        attacks = [a for a in scenario.attacks if a.name in args.attacks]
        fgsm = next(a for a in scenario.attacks if a.name == "fgsm")
        tag = target_tag(arch, init, scenario.target.trained_on)
        target_path = work / f"{tag}.onnx"
        if not target_path.is_file():
            parser.error(f"{target_path} not found: run reproduce {modality.key} with the same --work first")
        ctx = RunContext(
            scenario, str(target_path), str(data_path), args.device, 64, str(args.cache), torch.get_num_threads()
        )
        ctx, lv = delivered(ctx)
        plan = make_plan(ctx, lv.target.card, lv.target.sha256, lv.data, lv.test_sha256)
        job = next(j for j in plan.surrogates if j.row.seed == 0 and j.role == "attacker")
        record = trained(ctx, job.spec)
        if not record.from_cache:
            print(f"note: {job.id} was not in {args.cache}; trained it now from the same spec")
        model = load_surrogate(record, job.spec, args.device)
        test = lv.data.test
        how = Crafting(
            n_logits=job.spec.n_logits, multilabel=False, batch_size=64, seed=scenario.seed, device=args.device
        )
        curve = []
        for start in range(0, len(EXTENDED_EPSILONS), EPSILONS_PER_CALL):
            chunk = EXTENDED_EPSILONS[start : start + EPSILONS_PER_CALL]
            perturbed = fgsm.craft([model], test.x, test.y, chunk, how)
            curve += [(eps, mean_ssim(test.x, perturbed[eps].x_adv)) for eps in chunk]
        bound = scenario.perceptibility.min_mean_ssim
        below = first_below(tuple(curve), bound)
        curves.append(
            SsimCurve(
                target=tag,
                surrogate_id=job.id,
                attack="fgsm",
                test_images=len(test),
                bound=bound,
                curve=tuple(curve),
                first_below_bound=below,
            )
        )
        print(f"{tag}: FGSM mean SSIM first below {bound:g} at ε {below}")
        shown = np.flatnonzero(test.y == 1)[:EXAMPLES]
        for attack in attacks:
            perturbed = attack.craft([model], test.x[shown], test.y[shown], paper.EPSILONS, how)
            title = (
                f"{modality.title}: {attack.name} crafted on {job.id} (attacking the {tag} target)\n"
                f"{settings.image_size} px, test images {', '.join(map(str, shown))}; left full size, right the "
                f"{ZOOM}x centre crop"
            )
            out = work / f"epsilon_examples__{tag}__{attack.name}.png"
            page(test.x[shown], {eps: p.x_adv for eps, p in perturbed.items()}, title).save(out)
            print(f"wrote {out}")
    path = Path(results) / SSIM_CURVE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, SsimCurves(modality=modality.key, settings=settings, curves=tuple(curves)).model_dump_json(indent=1)
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
