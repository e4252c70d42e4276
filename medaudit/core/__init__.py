"""Ground utilities every stage may use: errors at the boundary, files, pixel units, metrics, decision
statistics, provenance and the content-addressed cache.

Imports: nothing from medaudit outside `core`. Pure functions and small classes; no stage logic.
"""

from __future__ import annotations

from medaudit.core.cache import Cache, content_key
from medaudit.core.decisions import (
    CHANGE_COUNTS,
    decision_changes,
    harmful_flips,
    sensitivity_at_threshold,
    specificity_at_threshold,
    threshold_at_specificity,
)
from medaudit.core.errors import AuditInputError, describe_validation_error, look_up_option
from medaudit.core.files import atomic_write, safe_name, sha256_file
from medaudit.core.metrics import (
    auc,
    bootstrap_curves,
    bootstrap_mean_drop,
    bootstrap_paired_auc,
    bootstrap_paired_difference,
    mean_ssim,
    per_class_auc,
    percentile_interval,
)
from medaudit.core.pixels import GREY_LEVELS_PER_PM1, ONE_GREY_LEVEL_PM1, deliver_uint8, grey_from_pm1, pm1_from_grey
from medaudit.core.provenance import code_version, package_versions, processor, python_and_platform

__all__ = [
    "atomic_write",
    "auc",
    "AuditInputError",
    "bootstrap_curves",
    "bootstrap_mean_drop",
    "bootstrap_paired_auc",
    "bootstrap_paired_difference",
    "Cache",
    "code_version",
    "content_key",
    "CHANGE_COUNTS",
    "decision_changes",
    "deliver_uint8",
    "describe_validation_error",
    "grey_from_pm1",
    "GREY_LEVELS_PER_PM1",
    "ONE_GREY_LEVEL_PM1",
    "harmful_flips",
    "look_up_option",
    "mean_ssim",
    "package_versions",
    "per_class_auc",
    "percentile_interval",
    "pm1_from_grey",
    "processor",
    "python_and_platform",
    "safe_name",
    "sensitivity_at_threshold",
    "sha256_file",
    "specificity_at_threshold",
    "threshold_at_specificity",
]
