"""The target's reference answers: its scores on the clean test images and its clinical operating threshold.

The threshold is the device's own when its card states one (`decision_threshold`, locked by the manufacturer).
Otherwise it is set at the scenario's specificity on development images the target was not trained on (the
split beside its `target.trained_on`), never on the test images the audit then judges it on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medaudit.core import AuditInputError, Cache, threshold_at_specificity
from medaudit.data import stratified_subset
from medaudit.engine.inputs import live
from medaudit.engine.plan import RunContext
from medaudit.records import Record
from medaudit.target import TargetQueries

UNSEEN_SPLIT = {"d1": "d2", "d2": "d1", "d2/2": "d1", "d1/10": "d2", "full": None}  # trained on -> never seen
THRESHOLD_IMAGES = 1000  # unseen development images (stratified, seeded) the threshold is set on, at most


class ReferenceRecord(Record):
    """The reference's scalar part (its clean scores are stored beside it as an array)."""

    threshold: float | None  # binary: the clinical operating threshold on the positive score; None otherwise
    threshold_rule: str  # where the threshold came from, in words
    target_queries: int  # images the target scored for it (clean test images and the unseen development images)


@dataclass(frozen=True)
class Reference:
    """Clean test scores and the operating threshold, as every job reads them."""

    record: ReferenceRecord
    clean_scores: np.ndarray  # (N,) positive score (binary) or (N, K), on the test images as the target gets them

    @property
    def threshold(self) -> float | None:
        return self.record.threshold

    @property
    def threshold_rule(self) -> str:
        return self.record.threshold_rule


def compute_reference(ctx: RunContext, key: str) -> Reference:
    """Score the clean test images and set the threshold (or read both from the cache)."""
    cache = Cache(ctx.cache_dir)
    if cache.has("reference", key):
        return load_reference(ctx, key)
    lv = live(ctx)
    sc, card, data = ctx.scenario, lv.target.card, lv.data
    queries = TargetQueries(lv.target)
    clean = queries.scores(data.test.x)
    if data.task != "binary":
        threshold, rule = None, f"not used: a {data.task} task has no single operating threshold"
    elif card.decision_threshold is not None:
        threshold = card.decision_threshold
        source = card.sources.get("decision_threshold", "card")
        rule = f"the device's locked decision threshold {threshold:g} (card `decision_threshold`, from the {source})"
    else:
        split = UNSEEN_SPLIT[sc.target.trained_on]
        if split is None:
            raise AuditInputError(
                f"{ctx.target_path}: the target was trained on all development images (`target.trained_on: full`), "
                "so none is left to set its operating threshold on; add the device's `decision_threshold` to its card"
            )
        unseen = data.split(split)
        pick = stratified_subset(unseen.y, THRESHOLD_IMAGES, sc.seed)
        scores = queries.scores(unseen.x[pick])
        threshold = threshold_at_specificity(unseen.y[pick], scores, sc.gate.specificity)
        rule = (
            f"the threshold giving specificity ≥ {sc.gate.specificity:g} on {len(pick):,} development images of "
            f"{split}, which the target was not trained on (the card states no `decision_threshold`)"
        )
    record = ReferenceRecord(threshold=threshold, threshold_rule=rule, target_queries=queries.images)
    cache.store("reference", key, record.model_dump_json(), {"clean_scores": clean})
    return Reference(record, clean)


def load_reference(ctx: RunContext, key: str) -> Reference:
    cache = Cache(ctx.cache_dir)
    record = ReferenceRecord.model_validate_json(cache.load_record("reference", key))
    return Reference(record, cache.load_arrays("reference", key)["clean_scores"])
