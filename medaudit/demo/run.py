"""The demo: a fundus classifier (referable diabetic retinopathy) audited end to end.

It trains a small EfficientNet-Lite0 target on d1 of the RetinaMNIST photographs (from a data folder, or
downloaded once from the official MedMNIST record: `medaudit.demo.data`), as a vendor would, exports it to ONNX
with its card in the metadata (a deployed model), then audits it with `scenarios/demo_retina.yaml`. Both the
target and the surrogates are cached.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from medaudit.attackers import build_target
from medaudit.audit import run_audit
from medaudit.demo.data import demo_data_path
from medaudit.engine import RunOptions
from medaudit.publish import finish
from medaudit.scenario import load_scenario

DEMO_SCENARIO = "demo_retina.yaml"
# what the demo's (fictional) manufacturer states; the report quotes it on the verdict card
DEMO_INTENDED_USE = (
    "Demonstration only, not a medical device: flags colour fundus photographs showing referable diabetic "
    "retinopathy (grade 2 or worse) for review by an ophthalmologist; adults in diabetic screening."
)


def run_demo(out_dir: Path, cache_dir: Path, data_dir: Path | None = None, log=print, say=print) -> int:
    """Build the demo target, run the demo scenario, write the report; return the gate's exit code.
    `data_dir`: folder holding the official retinamnist.npz; None downloads it into the cache."""
    scenario_path = Path(str(resources.files("medaudit.scenarios") / DEMO_SCENARIO))
    scenario = load_scenario(scenario_path)
    data_path = demo_data_path(data_dir, cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target_path = build_target(
        scenario,
        data_path,
        arch="efficientnet_lite0",
        init="imagenet",
        out_path=out_dir / "demo_target.onnx",
        cache_dir=cache_dir,
        name="demo fundus classifier (EfficientNet-Lite0, ImageNet init, d1)",
        class_names=("no referable DR", "referable DR"),
        intended_use=DEMO_INTENDED_USE,
        log=log,
    )
    options = RunOptions(out_dir=out_dir, cache_dir=cache_dir, command="medaudit demo")
    results = run_audit(
        scenario,
        scenario_path=scenario_path,
        target_path=target_path,
        data_source=str(data_path),
        options=options,
        log=log,
        progress=lambda phase, done, total: log(f"{phase}: {done}/{total}"),
    )
    return finish(results, out_dir, out_dir / "results.json", say=say)
