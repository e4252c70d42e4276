"""The method as the record states it: which tiers ran and with what, every attack parameter, how epsilon was searched,
when an attacker counts as evidence, how intervals were resampled, and where the clinical threshold came from."""

from __future__ import annotations

from medaudit.records import AuditResults, bound_check_text, threshold_text

METHODS = {  # attack name -> the method and its paper
    "fgsm": "FGSM (Goodfellow et al. 2015): one signed-gradient step on the surrogate",
    "pgd": "PGD (Madry et al. 2018): iterated signed-gradient steps, projected on the ε-ball",
    "mifgsm": "MI-FGSM (Dong et al. 2018) with input diversity (Xie et al. 2019) and translation invariance "
    "(Dong et al. 2019): the strongest of the standard transfer attacks",
    "apgd": "APGD (Croce & Hein 2020), AutoAttack's gradient attack, on the margin (and cross-entropy) of every "
    "image for the whole budget: each image's own extremum, which lowers the AUC most",
    "square": "Square (Andriushchenko et al. 2020), AutoAttack's score-based attack, on the margin of every image "
    "for the whole query budget, no gradients",
}
TIER_ORDER = {"transfer": 0, "query": 1, "whitebox": 2}


def _value(v: object) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "none"
    return str(v)


def tier_status_rows(results: AuditResults) -> list[dict]:
    """Each tier: whether it ran and how, the images it attacked and the target queries it cost."""
    transfer = [c for c in results.cells if c.tier == "transfer"]
    attackers = {s.id for s in results.surrogates if s.role == "attacker"}
    probes = sum(s.role == "probe" for s in results.surrogates)
    rows = [
        {
            "tier": "transfer",
            "ran": bool(transfer),
            "how": f"{len(attackers)} attackers (seeds and ensembles) and {probes} probe models trained on "
            "the audit's development splits; crafted without the target",
            "images": results.data.test_size,
            "queries": sum(c.target_queries for c in transfer),
            "seconds": results.timings.cells_seconds if results.timings else None,
        }
    ]
    for t in results.tiers:
        rows.append(
            {
                "tier": t.tier,
                "ran": t.available,
                "how": t.reason,
                "images": t.images,
                "queries": t.target_queries,
                "seconds": t.seconds,
            }
        )
    return rows


def bound_check_rows(results: AuditResults) -> list[dict]:
    """The white-box bound's checks (docs/bounds.md): convergence and reach from its tier, order from its verdict."""
    checks = [c for t in results.tiers for c in t.checks]
    checks += [v.order for v in results.tier_verdicts if v.order is not None]
    return [{"check": c, "text": bound_check_text(c)} for c in checks]


def attack_rows(results: AuditResults) -> list[dict]:
    """Every attack of the scenario with every parameter, in tier order."""
    specs = sorted(results.scenario.attacks, key=lambda a: TIER_ORDER[a.tier])
    return [
        {
            "id": a.id,
            "tier": a.tier,
            "method": METHODS.get(a.name, a.name),
            "params": "; ".join(f"{k} = {_value(v)}" for k, v in a.model_dump().items() if k != "name"),
        }
        for a in specs
    ]


def epsilon_rows(results: AuditResults) -> list[dict]:
    """Per attack: where the perceptibility bound and the near-invisible reference bind, the grid and its source."""
    out, previous = [], None
    for c in sorted(results.epsilon_choice, key=lambda c: TIER_ORDER[c.tier]):
        s = c.search
        if s is None:
            how = "explicit grid from the scenario"
        else:
            how = (
                f"searched on {s.n_images} images attacked on {s.attacker}: {len(s.steps)} steps up to "
                f"ε {s.ceiling_pm1:g}" + ("" if s.monotone else "; SSIM not monotone, each cell checked")
            )
        out.append(
            {
                "attack": c.attack_id,
                "tier": c.tier,
                "bound_eps": c.bound_epsilon_pm1,
                "near_eps": c.near_invisible_epsilon_pm1,
                "grid": ", ".join(f"{e:g}" for e, _ in c.curve),
                "admissible": len(c.admissible_epsilons_pm1),
                "measured": len(c.curve),
                "binds": c.bound_binds,
                "how": "as above" if how == previous else how,
            }
        )
        previous = how
    return out


def fitness_rule(results: AuditResults) -> str:
    f = results.scenario.fitness
    return (
        "A transfer attacker (one surrogate or an ensemble) counts as evidence of robustness for an attack only when "
        f"the lower 95% bound of its clean test AUC reaches {threshold_text(f.min_surrogate_auc)} (it learned the "
        "task) and, at the attack's largest admissible ε, its perturbations lower the AUC of a model of its row that "
        "did not make them (another seed, or the row's held-out probe) beyond that model's own shuffled control by "
        f"more than {f.min_transfer_drop:g} (lower 95% bound). Its AUC under its own attack is reported, not required. "
        "An unfit attacker's failure still counts: the attack worked."
    )


def bootstrap_text(results: AuditResults) -> str:
    b, data = results.scenario.bootstrap, results.data
    if data.patient_level:
        unit = (
            "patient-clustered: patients are resampled with all their images, because the data carry patient ids "
            "and images of one patient are not independent"
        )
    else:
        unit = (
            "image-level: images are resampled one by one, because the data carry no patient ids (images of one "
            "patient, if any, are treated as independent, which narrows the intervals)"
        )
    return (
        f"Every interval is a {100 * b.confidence:g}% bootstrap percentile interval over {b.resamples} resamples of "
        f"the test images, {unit}. A resample with one class only has no AUC: it is excluded and counted."
    )


def data_rows(results: AuditResults) -> list[tuple[str, str]]:
    d = results.data
    positives = "" if d.test_positives is None else f" ({d.test_positives} positive)"
    return [
        ("source", f"{d.source} ({d.task}; classes {', '.join(d.class_names)})"),
        ("origin", d.origin or "not stated (scenario data.origin)"),
        ("licence", d.licence or "not stated (scenario data.licence)"),
        ("split rule", d.split_rule),
        ("splits by patient", "yes" if d.patient_level else "no: image-level"),
        ("test images", f"{d.test_size}{positives}; selection: {d.test_selection}"),
        ("images audited", f"{d.image_size} px, {d.channels} channel(s); {d.resampling}"),
        ("label mapping", d.label_mapping),
    ]


def training_text(results: AuditResults) -> str:
    t = results.scenario.training
    return (
        f"Adam, learning rate {t.learning_rate:g}, batch {t.batch_size}, up to {t.epochs} epochs, stopping after "
        f"{t.patience} epochs without a better validation AUC; augmentation: {_value(t.augment)}; class-balanced "
        f"sampling: {_value(t.balanced_sampling)}. Each surrogate's curve and stopping reason: Annex B."
    )


def perceptibility_text(results: AuditResults) -> str:
    p = results.scenario.perceptibility
    if p is None:
        return "No perceptibility budget: every ε measured is admissible."
    return (
        f"An ε is admissible when the attack's adversarial images keep mean SSIM ≥ {p.min_mean_ssim:g} to their "
        f"originals (the attacker's budget). The stricter reference SSIM {p.near_invisible_ssim:g} marks a "
        "near-invisible change; it is shown beside each breaking ε, not judged."
    )


def grid_text(results: AuditResults) -> str:
    eps = results.scenario.epsilons_pm1
    if eps == "auto":
        return (
            "`epsilons_pm1: auto`: per attack, a bracketed search (regula falsi) finds the ε where mean SSIM meets the "
            "bound, then the attack is measured at fixed multiples of it (below and up to 1.5 times), so every grid "
            "straddles its bound."
        )
    return f"Explicit grid from the scenario: ε {', '.join(f'{e:g}' for e in eps)} ([-1, 1] units)."
