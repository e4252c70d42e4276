"""The demo's data: official RetinaMNIST (MedMNIST v2), checked against its official MD5. Nothing is bundled.

It comes from a data folder the user names (`medaudit demo --data DIR`, or env MEDAUDIT_DATA) holding
`retinamnist.npz`, or else from the official MedMNIST record (`medmnist:retinamnist`), downloaded once
into the cache. Fundus photographs, 28x28x3 uint8, 5-level DR grade; the demo task is referable DR
(grade >= 2). Licence CC BY 4.0, provenance, citations and limitations: DATA-LICENSE.md beside this module.
"""

from __future__ import annotations

from pathlib import Path

from medaudit.core import AuditInputError
from medaudit.data import MEDMNIST_MD5, fetch_medmnist, md5_file

DEMO_SET = "retinamnist"  # the MedMNIST set the demo audits
DEMO_FILE = "retinamnist.npz"  # its official file name (28 px)
DATA_ENV = "MEDAUDIT_DATA"  # data folder holding DEMO_FILE; `--data` overrides it


def demo_data_path(data_dir: Path | None, cache_dir: Path) -> Path:
    """The official `retinamnist.npz`: from `data_dir` (a folder holding it, or the file itself) after checking its
    MD5, or, when `data_dir` is None, fetched into `cache_dir/medmnist` (no network once it is there)."""
    expected = MEDMNIST_MD5[DEMO_SET][28]
    if data_dir is None:
        return fetch_medmnist(DEMO_SET, cache_dir=Path(cache_dir) / "medmnist")
    data_dir = Path(data_dir)
    path = data_dir / DEMO_FILE if data_dir.is_dir() else data_dir
    if not path.is_file():
        raise AuditInputError(
            f"{path}: demo data not found; put the official {DEMO_FILE} (MedMNIST, MD5 {expected}) "
            f"in that folder, or drop --data and {DATA_ENV} to download it"
        )
    got = md5_file(path)
    if got != expected:
        raise AuditInputError(
            f"{path}: demo data has MD5 {got}, expected the official {expected}; the demo needs "
            f"the official MedMNIST {DEMO_FILE}, whole and unchanged"
        )
    return path
