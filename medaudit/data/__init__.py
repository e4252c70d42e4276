"""The audit's images: sources (`medmnist:NAME`, `.npz`, CSV folders), the MedMNIST download, and the
patient-level splits and stratified subsets the run uses.

Imports: `core`, `scenario`, `records`, `target`.
"""

from __future__ import annotations

from medaudit.data.audit_data import AuditData, Images, load_data, stratified_subset
from medaudit.data.medmnist import MEDMNIST_MD5, fetch_medmnist, md5_file

__all__ = [
    "AuditData",
    "fetch_medmnist",
    "Images",
    "load_data",
    "md5_file",
    "MEDMNIST_MD5",
    "stratified_subset",
]
