"""The report's figures as inline SVG (vector; text drawn as paths so fonts and user text cannot leak markup).

Every point plotted is a number from `results.json`. Where a scenario row has several surrogates the
line is their mean and the bars span all their 95% intervals (an envelope, not a new interval).
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict

import matplotlib
from matplotlib.figure import Figure

from medaudit.gate import chosen_epsilons
from medaudit.results import AuditResults, CellRecord

WIDTH_IN = 6.9  # the A4 text column
_RC = {"font.size": 7.5, "axes.titlesize": 8, "axes.labelsize": 7.5, "legend.fontsize": 6.5, "xtick.labelsize": 7,
       "ytick.labelsize": 7, "svg.fonttype": "path", "svg.hashsalt": "medaudit", "axes.spines.top": False,
       "axes.spines.right": False, "font.family": "DejaVu Sans"}
_COLOURS = matplotlib.colormaps["tab10"].colors


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r"<!--.*?-->\s*", "", text, flags=re.S)  # matplotlib echoes label text in comments
    # width/height in pt from matplotlib; the CSS scales the figure to the column, keeping its aspect
    return text.replace("<svg ", '<svg class="figure" role="img" ', 1)


def _summary(cells: list[CellRecord], field: str) -> tuple[float, float, float]:
    """Mean point over surrogates and the envelope of their intervals (one surrogate: its interval)."""
    ivs = [getattr(c, field) for c in cells]
    points = [i.point for i in ivs]
    lows = [i.low for i in ivs if math.isfinite(i.low)]
    highs = [i.high for i in ivs if math.isfinite(i.high)]
    mean = sum(points) / len(points)
    return mean, min(lows) if lows else math.nan, max(highs) if highs else math.nan


def _grouped(results: AuditResults) -> dict[tuple[str, str], dict[float, list[CellRecord]]]:
    """(row id, attack id) -> epsilon -> cells (one per surrogate)."""
    out: dict[tuple[str, str], dict[float, list[CellRecord]]] = defaultdict(lambda: defaultdict(list))
    for c in results.cells:
        out[(c.row_id, c.attack_id)][c.epsilon_pm1].append(c)
    return out


def _errorbar(ax, xs, summaries, **kw):
    ys = [s[0] for s in summaries]
    err = [[max(0.0, y - lo) if math.isfinite(lo) else 0.0 for y, (_, lo, _) in zip(ys, summaries)],
           [max(0.0, hi - y) if math.isfinite(hi) else 0.0 for y, (_, _, hi) in zip(ys, summaries)]]
    ax.errorbar(xs, ys, yerr=err, capsize=2, linewidth=1.1, markersize=3, **kw)


def auc_vs_epsilon(results: AuditResults) -> str | None:
    """Target AUC over epsilon per attack: adversarial (solid) and control noise (dashed) per scenario row."""
    if not results.cells:
        return None
    grouped = _grouped(results)
    rows = list(dict.fromkeys(c.row_id for c in results.cells))
    attacks = list(dict.fromkeys(c.attack_id for c in results.cells))
    chosen = chosen_epsilons(results)
    ncols = min(len(attacks), 2)
    nrows = math.ceil(len(attacks) / ncols)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN, 2.5 * nrows + 0.25 * len(rows)), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        values = []
        for k, attack in enumerate(attacks):
            ax = axes[k // ncols][k % ncols]
            for r, row in enumerate(rows):
                by_eps = grouped.get((row, attack), {})
                if not by_eps:
                    continue
                eps = sorted(by_eps)
                adv = [_summary(by_eps[e], "auc_adversarial") for e in eps]
                ctl = [_summary(by_eps[e], "auc_control") for e in eps]
                colour = _COLOURS[r % len(_COLOURS)]
                _errorbar(ax, eps, adv, color=colour, marker="o", label=f"{row}: adversarial")
                _errorbar(ax, eps, ctl, color=colour, marker="s", linestyle="--", alpha=0.75,
                          label=f"{row}: control noise")
                values += [v for s in adv + ctl for v in s if math.isfinite(v)]
            clean = [c.auc_clean.point for c in results.cells if c.attack_id == attack]
            if clean:
                ax.axhline(sum(clean) / len(clean), color="0.35", linestyle=":", linewidth=1, label="clean")
            ax.axhline(0.5, color="0.75", linewidth=0.8, label="chance (0.5)")
            if chosen.get(attack) is not None:
                ax.axvline(chosen[attack], color="0.2", linewidth=0.8, linestyle="-.", label="chosen ε")
            ticks = sorted({e for row in rows for e in grouped.get((row, attack), {})})
            ax.set_xticks(ticks, [f"{e:g}" for e in ticks])
            ax.set_title(attack)
            ax.set_xlabel("ε (L∞, [-1, 1] units)")
            ax.grid(alpha=0.25, linewidth=0.5)
        axes[0][0].set_ylabel("target AUC")
        low = min(values + [0.45])
        axes[0][0].set_ylim(max(0.0, low - 0.05), 1.0)
        handles, labels = axes[0][0].get_legend_handles_labels()
        spare = [axes[k // ncols][k % ncols] for k in range(len(attacks), nrows * ncols)]
        for ax in spare:
            ax.set_axis_off()
        if spare:  # an empty panel holds the legend
            spare[0].legend(handles, labels, loc="center", frameon=False)
        else:
            fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), frameon=False)
        return _svg(fig)


def ssim_vs_epsilon(results: AuditResults) -> str | None:
    """Mean SSIM of the adversarial images over epsilon per attack, the bound and the chosen epsilon."""
    curves = [c for c in results.epsilon_choice if c.curve]
    if not curves:
        return None
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN * 0.7, 2.7))
        ax = fig.subplots()
        for k, choice in enumerate(curves):
            colour = _COLOURS[k % len(_COLOURS)]
            xs, ys = zip(*sorted(choice.curve))
            ax.plot(xs, ys, marker="o", markersize=3, color=colour, linewidth=1.1, label=choice.attack_id)
            if choice.chosen_epsilon_pm1 is not None:
                at = dict(choice.curve).get(choice.chosen_epsilon_pm1)
                if at is not None:
                    ax.plot([choice.chosen_epsilon_pm1], [at], marker="*", markersize=10, color=colour,
                            markeredgecolor="black", markeredgewidth=0.5, linestyle="none",
                            label=f"{choice.attack_id}: chosen ε {choice.chosen_epsilon_pm1:g}")
        ticks = sorted({e for c in curves for e, _ in c.curve})
        ax.set_xticks(ticks, [f"{e:g}" for e in ticks])
        bounds = sorted({c.bound for c in curves})
        for b in bounds:
            ax.axhline(b, color="firebrick", linestyle="--", linewidth=1, label=f"bound: mean SSIM ≥ {b:g}")
        ax.set_xlabel("ε (L∞, [-1, 1] units)")
        ax.set_ylabel("mean SSIM (adversarial vs clean)")
        ax.grid(alpha=0.25, linewidth=0.5)
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
        fig.tight_layout()
        return _svg(fig)


def relative_auc_bars(results: AuditResults) -> str | None:
    """Relative AUC (adversarial/clean) per scenario row and attack at the chosen epsilon, with 95% whiskers."""
    chosen = chosen_epsilons(results)
    attacks = [a for a, e in chosen.items() if e is not None]
    grouped = _grouped(results)
    rows = list(dict.fromkeys(c.row_id for c in results.cells))
    if not attacks or not rows:
        return None
    threshold = (results.scenario.get("gate") or {}).get("min_relative_auc")
    width = 0.8 / len(attacks)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN, 2.6))
        ax = fig.subplots()
        for k, attack in enumerate(attacks):
            xs, summaries, seeds = [], [], []
            for r, row in enumerate(rows):
                cells = grouped.get((row, attack), {}).get(chosen[attack], [])
                if not cells:
                    continue
                xs.append(r - 0.4 + width * (k + 0.5))
                summaries.append(_summary(cells, "relative_auc"))
                seeds.append([c.relative_auc.point for c in cells])
            if not xs:
                continue
            colour = _COLOURS[k % len(_COLOURS)]
            ys = [100 * s[0] for s in summaries]
            err = [[max(0.0, y - 100 * lo) if math.isfinite(lo) else 0.0 for y, (_, lo, _) in zip(ys, summaries)],
                   [max(0.0, 100 * hi - y) if math.isfinite(hi) else 0.0 for y, (_, _, hi) in zip(ys, summaries)]]
            ax.bar(xs, ys, width=width * 0.92, color=colour, alpha=0.85, label=f"{attack} (ε {chosen[attack]:g})",
                   yerr=err, capsize=3, error_kw={"linewidth": 0.9})
            for x, pts in zip(xs, seeds):
                if len(pts) > 1:
                    ax.plot([x] * len(pts), [100 * p for p in pts], "k.", markersize=3)
        ax.axhline(100, color="0.35", linestyle=":", linewidth=1, label="clean (100%)")
        if threshold is not None:
            ax.axhline(100 * threshold, color="firebrick", linestyle="--", linewidth=1,
                       label=f"criterion: lower bound ≥ {100 * threshold:g}%")
        ax.set_xticks(range(len(rows)), rows, rotation=15 if len(rows) > 3 else 0, ha="right" if len(rows) > 3 else "center")
        ax.set_ylabel("relative AUC, adversarial / clean (%)")
        ax.set_ylim(0, 110)
        ax.grid(axis="y", alpha=0.25, linewidth=0.5)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        return _svg(fig)
