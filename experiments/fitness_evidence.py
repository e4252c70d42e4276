"""Which check on a surrogate predicts that its perturbations move the target? (issue 25, item 5)

Reads every committed reproduction run (`docs/reproduction/*/*/results.json`, written by the previous fitness rule,
which recorded both checks) and, for every single surrogate with FGSM and PGD at the largest epsilon of its grid,
sets the two candidate fitness checks beside the outcome that matters, transfer to the target:
- breaks itself white-box: its own AUC on its own adversarial images <= 0.5 (the old rule);
- moves a sibling: another seed of its row keeps <= 0.97 of its clean AUC on those images;
- moves the target: the lower 95% bound of the target's (control - adversarial) AUC is above 0.

    python experiments/fitness_evidence.py        # prints the Markdown table of docs/fitness.md
"""

from __future__ import annotations

import json
from pathlib import Path

from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = ("fgsm", "pgd-step0.01-it20")  # the paper's two attacks, as the committed runs name them
BREAKS_ITSELF = 0.5  # the old rule's bound on the surrogate's own white-box AUC
MOVES_SIBLING = 0.97  # the old rule's bound on a sibling's relative AUC


def cells() -> list[dict]:
    out = []
    for path in sorted(ROOT.glob("docs/reproduction/*/*/results.json")):
        run = json.loads(path.read_text())
        largest = {c["attack_id"]: c["chosen_epsilon_pm1"] for c in run["epsilon_choice"]}
        for c in run["cells"]:
            if c["attack_id"] in ATTACKS and c["epsilon_pm1"] == largest[c["attack_id"]] and c["sibling_relative_auc"]:
                out.append(
                    {
                        "whitebox": c["surrogate_auc_whitebox"],
                        "sibling": c["sibling_relative_auc"],
                        "target_relative": c["relative_auc"]["point"],
                        "target_moved": c["adversarial_specific_drop"]["low"] > 0,
                    }
                )
    return out


def main() -> None:
    rows = cells()
    moved = [r["target_moved"] for r in rows]
    print(f"{len(rows)} surrogate cells; {sum(moved)} move the target beyond its control\n")
    print("| check | passes | of those, move the target | fail | of those, move the target |")
    print("|---|---|---|---|---|")
    for name, passes in (
        ("breaks itself white-box (AUC ≤ 0.5)", [r["whitebox"] <= BREAKS_ITSELF for r in rows]),
        ("moves a sibling (≤ 0.97 of its clean AUC)", [r["sibling"] <= MOVES_SIBLING for r in rows]),
    ):
        hit = sum(p and m for p, m in zip(passes, moved))
        miss = sum((not p) and m for p, m in zip(passes, moved))
        n_pass = sum(passes)
        print(
            f"| {name} | {n_pass} | {hit} ({hit / n_pass:.0%}) | {len(rows) - n_pass} | {miss} ({miss / (len(rows) - n_pass):.0%}) |"
        )
    rho_w = spearmanr([r["whitebox"] for r in rows], [r["target_relative"] for r in rows]).statistic
    rho_s = spearmanr([r["sibling"] for r in rows], [r["target_relative"] for r in rows]).statistic
    print(
        f"\nSpearman correlation with the target's relative AUC: own white-box AUC {rho_w:+.2f}, sibling's {rho_s:+.2f}"
    )


if __name__ == "__main__":
    main()
