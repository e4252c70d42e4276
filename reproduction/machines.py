"""Which code version and which machine made each run, and which model ids stand for two trained models.

The code version is the commit the run recorded, with `+dirty` where its tree had uncommitted changes (schema 2.0
wrote that into the commit, 3.0 into `code_committed`); the machine is the one `run_info.json` recorded for the run
(device, processor and torch's CPU kernel level, threads), else the run's own environment record.
"""

from __future__ import annotations

from reproduction.fmt import duration, table
from reproduction.protocol import EXPERIMENTS, target_label
from reproduction.runs import ModalityRuns, Run, retrained


def machine(c: ModalityRuns, run: Run) -> str:
    """e.g. `cpu, AMD EPYC (AVX512), 2 threads`."""
    entry = c.run_info.runs.get(run.name) if c.run_info else None
    if entry is not None:
        m = entry.machine
        device = f"{m.device} ({m.gpu})" if m.gpu else m.device
        return f"{device}, {m.cpu or 'processor not recorded'}, {m.cpu_threads} threads"
    env = run.record.environment
    device = f"{env.device} ({env.gpu})" if env.gpu else env.device
    return f"{device}, {env.processor or 'processor not recorded'}, {env.cpu_threads} threads"


def short_target(run: Run) -> str:
    return target_label(run.arch, run.init, run.split)


def run_label(run: Run) -> str:
    return f"{run.experiment} vs {short_target(run)}"


def runs_table(loaded: dict[str, ModalityRuns]) -> list[str]:
    """Appendix: per run (experiment × target down, modality across) its code version, schema and wall time."""
    return _grid(loaded, lambda c, run: f"`{run.record.provenance.code}` {run.schema}, {_time(c, run)}")


def _time(c: ModalityRuns, run: Run) -> str:
    entry = c.run_info.runs.get(run.name) if c.run_info else None
    return duration(entry.seconds) if entry else "time not recorded"


def _grid(loaded: dict[str, ModalityRuns], cell) -> list[str]:
    keys = [k for k, c in loaded.items() if c.runs]
    rows = []
    for experiment, targets in EXPERIMENTS.items():
        for arch, init in targets:
            split = "d1/10" if experiment == "small_data" else "d1"
            runs = [(loaded[k], loaded[k].run(experiment, arch, init)) for k in keys]
            rows.append(
                [f"{experiment} vs {target_label(arch, init, split)}", *(cell(c, r) if r else "—" for c, r in runs)]
            )
    return table(["run", *keys], rows)


def code_grid(loaded: dict[str, ModalityRuns]) -> list[str]:
    """Main text: the code version of every run, experiment × target down, modality across; then the machines."""
    lines = _grid(
        loaded, lambda c, run: f"`{run.record.provenance.code}`" + (f" ({run.schema})" if run.schema != "2.0" else "")
    )
    keys = [k for k, c in loaded.items() if c.runs]
    machines = {key: sorted({machine(loaded[key], r) for r in loaded[key].runs}) for key in keys}
    return lines + ["", "Machines: " + "; ".join(f"{k}: {' / '.join(m)}" for k, m in machines.items()) + "."]


def identity(c: ModalityRuns) -> str:
    """One paragraph: whether every model id names one trained model across the modality's runs, else which do not."""
    split = retrained(c)
    if not split:
        return f"Model identity on {c.folder.name}: every target and surrogate id names one trained model."
    runs = {r.name: r for r in c.runs}
    parts = []
    for r in split:
        if r.kind == "target":
            versions = "; ".join(
                f"clean AUC {v.auc:.3f} in " + ", ".join(run_label(runs[n]) for n in v.runs) for v in r.versions
            )
            parts.append(f"target {short_target(runs[r.versions[0].runs[0]])} ({versions})")
    by_runs: dict[tuple, list[str]] = {}
    for r in split:
        if r.kind == "surrogate":
            by_runs.setdefault(tuple(v.runs for v in r.versions), []).append(r.id)
    parts += [
        f"{len(ids)} surrogate ids ({', '.join(ids)}), one version in each of: "
        + "; ".join(", ".join(run_label(runs[n]) for n in names) for names in partition)
        for partition, ids in by_runs.items()
    ]
    return f"Model identity on {c.folder.name}: some ids stand for two trained models: {'; '.join(parts)}."
