"""The report's figures as inline SVG (vector; text drawn as paths so fonts and user text cannot leak markup).

Every point plotted is a number from `results.json`. Where a scenario row has several surrogates the
adversarial line follows the most harmful one at each ε (the attacker keeps its best surrogate) and the
control line their mean; ε beyond the perceptibility bound is shaded.
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict

import matplotlib
from matplotlib.figure import Figure

from medaudit.report.tables import admissible
from medaudit.results import AuditResults, CellRecord

WIDTH_IN = 6.9  # the A4 text column
_RC = {
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "svg.fonttype": "path",
    "svg.hashsalt": "medaudit",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.family": "DejaVu Sans",
}
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


def _grouped(results: AuditResults) -> dict[tuple[str, str], dict[float, list[CellRecord]]]:
    """(row id, attack id) -> epsilon -> cells (one per surrogate)."""
    out: dict[tuple[str, str], dict[float, list[CellRecord]]] = defaultdict(lambda: defaultdict(list))
    for c in results.cells:
        out[(c.row_id, c.attack_id)][c.epsilon_pm1].append(c)
    return out


def _errorbar(ax, xs, intervals, **kw):
    ys = [i.point for i in intervals]
    err = [
        [max(0.0, i.point - i.low) if math.isfinite(i.low) else 0.0 for i in intervals],
        [max(0.0, i.high - i.point) if math.isfinite(i.high) else 0.0 for i in intervals],
    ]
    ax.errorbar(xs, ys, yerr=err, capsize=2, linewidth=1.1, markersize=3, **kw)


def auc_vs_epsilon(results: AuditResults) -> str | None:
    """Target AUC over ε per attack: the most harmful surrogate's adversarial AUC (solid) and control (dashed)."""
    if not results.cells:
        return None
    grouped = _grouped(results)
    rows = list(dict.fromkeys(c.row_id for c in results.cells))
    attacks = list(dict.fromkeys(c.attack_id for c in results.cells))
    allowed = admissible(results)
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
                adv = [min(by_eps[e], key=lambda c: c.auc_adversarial.point).auc_adversarial for e in eps]
                ctl = [sum(c.auc_control.point for c in by_eps[e]) / len(by_eps[e]) for e in eps]
                colour = _COLOURS[r % len(_COLOURS)]
                _errorbar(ax, eps, adv, color=colour, marker="o", label=f"{row}: adversarial (most harmful surrogate)")
                ax.plot(
                    eps,
                    ctl,
                    color=colour,
                    marker="s",
                    markersize=3,
                    linestyle="--",
                    alpha=0.75,
                    linewidth=1.1,
                    label=f"{row}: control noise (mean)",
                )
                values += [v for i in adv for v in (i.point, i.low) if math.isfinite(v)] + ctl
            clean = [c.auc_clean.point for c in results.cells if c.attack_id == attack]
            if clean:
                ax.axhline(sum(clean) / len(clean), color="0.35", linestyle=":", linewidth=1, label="clean")
            ax.axhline(0.5, color="0.75", linewidth=0.8, label="chance (0.5)")
            ticks = sorted({e for row in rows for e in grouped.get((row, attack), {})})
            limit = max(allowed.get(attack, ()), default=None)
            beyond = [e for e in ticks if limit is None or e > limit]
            if beyond:
                left = limit if limit is not None else min(ticks)
                ax.axvspan(
                    left + (min(beyond) - left) / 2 if limit is not None else left,
                    max(ticks) * 1.05,
                    color="0.9",
                    zorder=0,
                    label="beyond the perceptibility bound",
                )
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
    """Mean SSIM of the adversarial images over ε per attack, the bound, and the admissible ε (filled)."""
    curves = [c for c in results.epsilon_choice if c.curve]
    if not curves:
        return None
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN * 0.7, 2.7))
        ax = fig.subplots()
        for k, choice in enumerate(curves):
            colour = _COLOURS[k % len(_COLOURS)]
            xs, ys = zip(*sorted(choice.curve))
            ax.plot(xs, ys, color=colour, linewidth=1.1, label=choice.attack_id)
            ok = [(e, v) for e, v in choice.curve if e in choice.admissible_epsilons_pm1]
            if ok:
                ax.plot(
                    *zip(*ok),
                    marker="o",
                    markersize=4,
                    color=colour,
                    linestyle="none",
                    label=f"{choice.attack_id}: admissible ε",
                )
            out = [(e, v) for e, v in choice.curve if e not in choice.admissible_epsilons_pm1]
            if out:
                ax.plot(*zip(*out), marker="o", markersize=4, markerfacecolor="white", color=colour, linestyle="none")
        ticks = sorted({e for c in curves for e, _ in c.curve})
        ax.set_xticks(ticks, [f"{e:g}" for e in ticks])
        for b in sorted({c.bound for c in curves}):
            ax.axhline(b, color="firebrick", linestyle="--", linewidth=1, label=f"bound: mean SSIM ≥ {b:g}")
        ax.set_xlabel("ε (L∞, [-1, 1] units)")
        ax.set_ylabel("mean SSIM (adversarial vs clean)")
        ax.grid(alpha=0.25, linewidth=0.5)
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
        fig.tight_layout()
        return _svg(fig)


def learning_curves(results: AuditResults) -> str | None:
    """One small panel per trained surrogate: validation AUC (solid) and training loss (dashed) per epoch."""
    trained = [s for s in results.surrogates if s.learning_curve]
    if not trained:
        return None
    ncols = min(4, len(trained))
    nrows = math.ceil(len(trained) / ncols)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN, 1.7 * nrows + 0.3), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, s in enumerate(trained):
            ax = axes[k // ncols][k % ncols]
            epochs = [e.epoch for e in s.learning_curve]
            ax.plot(
                epochs, [e.val_auc for e in s.learning_curve], color=_COLOURS[0], linewidth=1.1, label="validation AUC"
            )
            ax.axvline(s.best_epoch, color="0.5", linestyle=":", linewidth=0.8, label="best epoch")
            loss = ax.twinx()
            loss.plot(
                epochs,
                [e.train_loss for e in s.learning_curve],
                color=_COLOURS[1],
                linestyle="--",
                linewidth=1.0,
                label="training loss",
            )
            loss.tick_params(labelsize=6)
            budget = s.stop_reason == "budget"
            ax.set_title(
                f"{s.row_id} seed {s.seed}\nstopped: {s.stop_reason}" + (" (!)" if budget else ""),
                fontsize=6.5,
                color="firebrick" if budget else "black",
            )
            ax.set_ylim(0.4, 1.0)
            ax.set_xlabel("epoch", fontsize=6.5)
            ax.grid(alpha=0.25, linewidth=0.5)
        for k in range(len(trained), nrows * ncols):
            axes[k // ncols][k % ncols].set_axis_off()
        h1, l1 = axes[0][0].get_legend_handles_labels()
        fig.legend(
            h1 + [loss.get_lines()[0]],
            l1 + ["training loss (right axis)"],
            loc="outside lower center",
            ncol=3,
            frameon=False,
        )
        return _svg(fig)
