"""The bundled demo data: official RetinaMNIST (MedMNIST v2), checked against its official MD5.

Fundus photographs, 28x28x3 uint8, 5-level DR grade; the demo task is referable DR (grade >= 2).
Licence CC BY 4.0, provenance, citations and limitations: DATA-LICENSE.md beside this module.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from medaudit.errors import AuditInputError
from medaudit.medmnist import MEDMNIST_MD5, md5_file

DEMO_FILE = "retinamnist.npz"
DEMO_MD5 = MEDMNIST_MD5["retinamnist"][28]
REINSTALL = "reinstall medaudit (pip install --force-reinstall --no-deps medaudit)"


def demo_data_path() -> Path:
    """Path to the bundled `retinamnist.npz`, after checking it is the official file."""
    path = Path(str(files("medaudit.demo") / DEMO_FILE))
    if not path.is_file():
        raise AuditInputError(f"{path}: bundled demo data is missing; {REINSTALL}")
    got = md5_file(path)
    if got != DEMO_MD5:
        raise AuditInputError(f"{path}: bundled demo data has MD5 {got}, expected the official {DEMO_MD5}; "
                              f"the file is damaged; {REINSTALL}")
    return path
