"""The report's figures as inline SVG (vector; text drawn as paths so fonts and user text cannot leak markup).

Every point plotted is a number from `results.json`. Where a threat row has several attackers, its line follows
the most harmful one at each ε (the attacker keeps its best).
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict

import matplotlib
import matplotlib.ticker
from matplotlib.figure import Figure

from medaudit.records import AuditResults

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
TIER_NAMES = {"transfer": "transfer", "query": "query", "whitebox": "white-box"}


def _svg(fig: Figure, name: str) -> str:
    """The figure as inline SVG; its ids (glyphs, clip paths) carry `name`, so figures in one page never share one."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r"<!--.*?-->\s*", "", text, flags=re.S)  # matplotlib echoes label text in comments
    text = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", text)
    # width/height in pt from matplotlib; the CSS scales the figure to the column, keeping its aspect
    return text.replace("<svg ", '<svg class="figure" role="img" ', 1)


def _by_row_and_eps(results: AuditResults, attack_id: str) -> dict[str, dict[float, float]]:
    """Row -> epsilon -> the lowest relative AUC over the row's attackers there (the attacker keeps its best)."""
    out: dict[str, dict[float, float]] = defaultdict(dict)
    for c in results.cells:
        if c.attack_id == attack_id and math.isfinite(c.relative_auc.point):
            best = out[c.row_id].get(c.epsilon_pm1, math.inf)
            out[c.row_id][c.epsilon_pm1] = min(best, c.relative_auc.point)
    return out


def _epsilon_marks(ax, choice) -> None:
    if choice is None:
        return
    if choice.bound_epsilon_pm1:
        ax.axvline(choice.bound_epsilon_pm1, color="firebrick", linewidth=0.9, label="the budget's ε")
    if choice.near_invisible_epsilon_pm1:
        ax.axvline(
            choice.near_invisible_epsilon_pm1,
            color="firebrick",
            linestyle=":",
            linewidth=0.9,
            label="near-invisible ε (reference SSIM)",
        )


def robustness_curves(results: AuditResults) -> str | None:
    """Relative AUC over epsilon, one panel per attack (tier in the title): per threat row the best attacker at each
    epsilon, the criterion's threshold, and where the perceptibility bound and the near-invisible reference bind."""
    attacks = [a for a in results.scenario.attacks if any(c.attack_id == a.id for c in results.cells)]
    if not attacks:
        return None
    choices = {c.attack_id: c for c in results.epsilon_choice}
    rows = list(dict.fromkeys(c.row_id for c in results.cells))
    colour = {row: _COLOURS[k % len(_COLOURS)] for k, row in enumerate(rows)}
    threshold = results.scenario.gate.min_relative_auc
    ncols = 2
    nrows = math.ceil((len(attacks) + 1) / ncols)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN, 1.9 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        handles = {}
        for k, attack in enumerate(attacks):
            ax = axes[k // ncols][k % ncols]
            for row, curve in _by_row_and_eps(results, attack.id).items():
                eps = sorted(curve)
                (line,) = ax.plot(
                    eps, [curve[e] for e in eps], color=colour[row], marker="o", markersize=2.5, linewidth=1.1
                )
                handles.setdefault(row, line)
            _epsilon_marks(ax, choices.get(attack.id))
            if threshold is not None:
                ax.axhline(threshold, color="0.35", linestyle="--", linewidth=0.9, label="criterion threshold")
            ax.set_title(f"{TIER_NAMES[attack.tier]}: {attack.id}", fontsize=7)
            ax.set_xlabel("ε (L∞, [-1, 1] units)")
            ax.grid(alpha=0.25, linewidth=0.5)
            for h, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, h)
        for k in range(nrows):
            axes[k][0].set_ylabel("relative AUC")
        axes[0][0].set_ylim(0.0, 1.05)
        spare = [axes[k // ncols][k % ncols] for k in range(len(attacks), nrows * ncols)]
        for ax in spare:
            ax.set_axis_off()
        spare[0].legend(list(handles.values()), list(handles), loc="center", frameon=False, fontsize=6)
        return _svg(fig, "robustness")


def ssim_curves(results: AuditResults) -> str | None:
    """Mean SSIM over epsilon per attack (filled: admissible), the bound and the near-invisible reference."""
    curves = [c for c in results.epsilon_choice if c.curve]
    if not curves:
        return None
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN, 2.4), layout="constrained")
        ax = fig.subplots()
        for k, choice in enumerate(curves):
            colour = _COLOURS[k % len(_COLOURS)]
            xs, ys = zip(*sorted(choice.curve))
            ax.plot(xs, ys, color=colour, linewidth=1.1, label=f"{choice.attack_id} ({TIER_NAMES[choice.tier]})")
            admissible = {round(e, 9) for e in choice.admissible_epsilons_pm1}
            for e, v in choice.curve:
                face = colour if round(e, 9) in admissible else "white"
                ax.plot([e], [v], marker="o", markersize=3.5, color=colour, markerfacecolor=face, linestyle="none")
        bounds = {c.bound for c in curves if c.bound is not None}
        for b in sorted(bounds):
            ax.axhline(b, color="firebrick", linestyle="--", linewidth=1, label=f"budget: mean SSIM ≥ {b:g}")
        for r in sorted({c.near_invisible_ssim for c in curves if c.near_invisible_ssim is not None}):
            ax.axhline(r, color="firebrick", linestyle=":", linewidth=1, label=f"near-invisible reference {r:g}")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_xlabel("ε (L∞, [-1, 1] units, log scale)")
        ax.set_ylabel("mean SSIM")
        ax.grid(alpha=0.25, linewidth=0.5)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        return _svg(fig, "ssim")


def learning_curves(results: AuditResults) -> str | None:
    """One small panel per trained surrogate: validation AUC (solid) and training loss (dashed) per epoch."""
    trained = [s for s in results.surrogates if s.learning_curve]
    rows = list(dict.fromkeys(s.row_id for s in trained))
    trained.sort(key=lambda s: (rows.index(s.row_id), s.role, s.seed))
    if not trained:
        return None
    ncols = min(4, len(trained))
    nrows = math.ceil(len(trained) / ncols)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN, 1.3 * nrows + 0.3), layout="constrained")
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
                f"{s.row_id} {'probe' if s.role == 'probe' else f'seed {s.seed}'}\nstopped: {s.stop_reason}"
                + (" (!)" if budget else ""),
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
        return _svg(fig, "curves")
