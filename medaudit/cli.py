"""medaudit's command line (thin): each command reads inputs, calls one stage, prints, exits.

Exit codes: 0 success / gate passed, 1 gate failed (or inconclusive), 2 bad input or configuration.
"""

from __future__ import annotations

import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from medaudit.core import AuditInputError

USAGE_EXIT = 2  # exit code of every usage error and bad input


class OneLineErrors(TyperGroup):
    """Usage errors (a missing file, an unknown option) print one line `medaudit: error: ...` and exit 2, like every
    other input error, instead of click's multi-line box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        args = sys.argv[1:] if args is None else list(args)
        try:
            code = super().main(args or ["--help"], prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # click's UsageError, BadParameter, FileError, ...
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            print(f"medaudit: error: {' '.join(exc.format_message().split())}{hint}", file=sys.stderr)
            sys.exit(USAGE_EXIT)
        except typer.Abort:
            print("medaudit: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    rich_markup_mode=None,  # help texts are plain: `medaudit[ray]` must not be read as markup
    add_completion=False,  # a bare `medaudit` prints the help (OneLineErrors)
    help="Audit a deployed medical-image classifier for black-box adversarial transferability.",
)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
DEBUG = {"on": False}


def default_cache() -> Path:
    import os

    return Path(os.environ.get("MEDAUDIT_CACHE", Path.home() / ".cache" / "medaudit"))


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for input errors and third-party warnings.")
    ] = False,
) -> None:
    DEBUG["on"] = debug
    if not debug:  # medaudit itself never warns (it refuses or logs); what warns is torch, onnx, pydicom... about
        warnings.simplefilter(
            "ignore"
        )  # themselves (torch.jit.load's FutureWarning, TracerWarning): not the user's job


def fail_input(exc: AuditInputError) -> None:
    if DEBUG["on"]:
        raise exc
    err.print(f"medaudit: error: {exc}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(USAGE_EXIT)


ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Scenario YAML files.")]) -> None:
    """Check scenario files against the schema; exit 2 on the first invalid one."""
    from medaudit.scenario import load_scenario

    try:
        for f in files:
            scenario = load_scenario(f)
            out.print(
                f"{f}: valid scenario {scenario.name!r}: {len(scenario.surrogate_rows())} surrogate row(s), "
                f"{len(scenario.attacks)} attack(s) in tier(s) {', '.join(dict.fromkeys(a.tier for a in scenario.attacks))}, "
                + (
                    "epsilons searched per attack (auto)"
                    if scenario.epsilons_pm1 == "auto"
                    else f"{len(scenario.epsilons_pm1)} epsilon(s)"
                ),
                highlight=False,
            )
    except AuditInputError as exc:
        fail_input(exc)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the scenario format (for editors)."""
    from medaudit.scenario import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=2))


@app.command()
def inspect(
    model: ExistingFile,
    scenario: Annotated[Optional[Path], typer.Option(help="Scenario whose target.card applies.")] = None,
    data: Annotated[Optional[str], typer.Option(help="Run the load checks on these images.")] = None,
) -> None:
    """Show every target card field that can be read (and where it came from), the line to add for each missing
    one, then exit 2 if one is missing; with --data, run the input/output check on those images."""
    from medaudit.scenario import CardFields, load_scenario
    from medaudit.target import CARD_HOMES, read_card

    try:
        sc = load_scenario(scenario) if scenario else None
        card = sc.target.card if sc else CardFields()
        reading = read_card(model, card, task=sc.data.task if sc else None)
        from medaudit.core import sha256_file

        table = Table(title=f"{model.name}  sha256 {sha256_file(model)[:16]}…")
        table.add_column("card field")
        table.add_column("value")
        table.add_column("source")
        missing = {m.field: m for m in reading.missing}
        for key in CardFields.model_fields:
            value = getattr(reading.fields, key)
            if key in missing:
                table.add_row(key, "MISSING", f"add `{missing[key].yaml_line}`")
            elif value is not None:
                table.add_row(key, str(value), reading.sources.get(key, "derived"))
            else:
                table.add_row(key, "—", reading.sources.get(key, "—"))
        out.print(table)
        if reading.missing:
            lines = "; ".join(f"`{m.yaml_line.split('  #')[0]}`" for m in reading.missing)
            raise AuditInputError(
                f"{model}: {len(reading.missing)} card field(s) needed and missing; add {lines} to "
                f"{CARD_HOMES.format(name=model.name)}"
            )
        if data or (sc and sc.data.source):
            from medaudit.engine import prepare

            target, audit_data = prepare(sc or _bare_scenario(), model, data)
            check = target.load_check
            out.print(
                f"check on {check.images} audit images: passed ({check.output_columns} output column(s), same output "
                f"twice within {check.deterministic_max_diff:.2g}); "
                f"test images {len(audit_data.test)}, development {len(audit_data.development)}; "
                f"{'patient-level' if audit_data.patient_level else 'image-level'} splits",
                highlight=False,
            )
    except AuditInputError as exc:
        fail_input(exc)


def _bare_scenario():
    from medaudit.scenario import Scenario

    return Scenario(name="inspect")


@app.command()
def run(
    target: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="ONNX or TorchScript model.")],
    scenario: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Threat-model YAML.")],
    data: Annotated[Optional[str], typer.Option(help="Data source (overrides the scenario's data.source).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output folder.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache", help="Cache folder (shared by Ray workers).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda (default: cuda when torch sees one).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Attack batch size.")] = 64,
    executor: Annotated[str, typer.Option(help="local, or ray (pip install 'medaudit[ray]').")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (with --executor ray).")] = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip the PDF (results.json, junit.xml, summary.md still written).")
    ] = False,
    baseline: Annotated[
        Optional[Path],
        typer.Option(exists=True, dir_okay=False, help="The previous release's results.json: compare, and report it."),
    ] = None,
) -> None:
    """Run the audit the scenario describes against the target; write results, report and gate files."""
    import torch

    from medaudit.audit import run_audit
    from medaudit.core import look_up_option
    from medaudit.engine import EXECUTORS, RunOptions
    from medaudit.gate import compare, read_release
    from medaudit.publish import finish
    from medaudit.scenario import load_scenario

    try:
        sc = load_scenario(scenario)
        out_dir = out_dir or Path("medaudit-out") / sc.name
        if device not in (None, "cpu", "cuda"):
            raise AuditInputError(f"--device {device!r}: use cpu or cuda")
        look_up_option(executor, EXECUTORS, what="executor", where="--executor")
        if address and executor != "ray":
            raise AuditInputError("--address names a Ray cluster; add --executor ray")
        if baseline is not None and read_release(baseline).provenance.scenario_canonical_sha256 != sc.content_hash():
            raise AuditInputError(f"{baseline}: the previous release ran another scenario; compare like with like")
        options = RunOptions(
            out_dir=out_dir,
            cache_dir=cache_dir or default_cache(),
            resume=resume,
            device=device,
            batch_size=batch_size,
            executor=executor,
            address=address,
            command="medaudit " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        )
        results = run_audit(
            sc,
            scenario_path=scenario,
            target_path=target,
            data_source=data,
            options=options,
            log=lambda m: err.print(m, highlight=False),
            progress=_progress,
        )
        if baseline is not None:
            from medaudit.records import write_results

            results = results.model_copy(update={"release_comparison": compare(baseline, out_dir / "results.json")})
            write_results(results, out_dir / "results.json")
        code = finish(results, out_dir, out_dir / "results.json", render=not no_report, say=_say)
    except AuditInputError as exc:
        fail_input(exc)
        return
    except torch.OutOfMemoryError:
        fail_input(AuditInputError(out_of_memory(batch_size, sc.training.batch_size, device or "the device")))
        return
    raise typer.Exit(code)


def out_of_memory(batch_size: int, training_batch_size: int, device: str) -> str:
    """The fix for a run that ran out of device memory: lower the batch sizes that set how many images are in
    flight at once (attack rows per pass, training batch) or, when both already hold one image, another device."""
    if batch_size == 1 and training_batch_size == 1:
        return (
            f"{device} ran out of memory with one image in flight (`--batch-size 1`, `training.batch_size: 1`); "
            "run on a device with more memory (`--device cpu` uses the host's)"
        )
    return (
        f"{device} ran out of memory; lower `--batch-size` (attack rows per pass, now {batch_size}) or the "
        f"scenario's `training.batch_size` (now {training_batch_size})"
    )


def _progress(phase: str, done: int, total: int) -> None:
    err.print(f"{phase}: {done}/{total}", highlight=False)


def _say(message: str) -> None:
    out.print(message, highlight=False)


@app.command()
def report(
    results_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="results.json of a run.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder (default: beside the results).")] = None,
) -> None:
    """Re-render report, junit.xml and summary from a results.json (never rewritten); exit with the gate."""
    from medaudit.publish import finish
    from medaudit.records import read_results

    try:
        results = read_results(results_file)
        if results.status != "complete":
            raise AuditInputError(
                f"{results_file}: the run did not finish; continue it with `medaudit run ... --resume`"
            )
        code = finish(results, out_dir or results_file.parent, results_file, say=_say)
    except AuditInputError as exc:
        fail_input(exc)
        return
    raise typer.Exit(code)


@app.command()
def compare(
    base: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The previous release's results.json.")],
    new: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="This release's results.json.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder (default: beside NEW).")] = None,
    max_regression: Annotated[
        Optional[float], typer.Option(min=0, max=1, help="Largest allowed worsening (default: NEW's gate).")
    ] = None,
) -> None:
    """Compare a release with the previous one (same scenario, same test images); exit 0 when no criterion worsened
    beyond the allowed regression, 3 when one did or may have, 2 on bad input."""
    from medaudit.core import atomic_write
    from medaudit.gate import COMPARE_EXIT, comparison_junit, comparison_markdown, read_release
    from medaudit.gate import compare as compare_releases

    try:
        comparison = compare_releases(base, new, max_regression)
    except AuditInputError as exc:
        fail_input(exc)
        return
    folder = out_dir or new.parent
    atomic_write(folder / "comparison.md", comparison_markdown(comparison, read_release(new)))
    atomic_write(folder / "comparison.junit.xml", comparison_junit(comparison))
    _say(f"comparison: {folder / 'comparison.md'}")
    _say(f"regression check: {comparison.verdict}")
    raise typer.Exit(COMPARE_EXIT[comparison.verdict])


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("medaudit-demo"),
    cache_dir: Annotated[Optional[Path], typer.Option("--cache", help="Cache folder.")] = None,
    data_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--data",
            envvar="MEDAUDIT_DATA",
            help="Folder holding the official retinamnist.npz (default: "
            "$MEDAUDIT_DATA; without either, it is downloaded once from the MedMNIST record into the cache).",
        ),
    ] = None,
) -> None:
    """Audit a small fundus classifier on RetinaMNIST photographs (official MedMNIST file), end to end."""
    from medaudit.demo.run import run_demo

    try:
        code = run_demo(
            out_dir, cache_dir or default_cache(), data_dir, log=lambda m: err.print(m, highlight=False), say=_say
        )
    except AuditInputError as exc:
        fail_input(exc)
        return
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
