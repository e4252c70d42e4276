"""Fetch official MedMNIST `.npz` files into a local cache, verified by their official MD5.

MedMNIST v2/v3 (Yang et al., "MedMNIST v2 — A large-scale lightweight benchmark for 2D and 3D
biomedical image classification", Scientific Data 2023) publishes every set on Zenodo, record
10519652: `{name}.npz` at 28 px and `{name}_{size}.npz` at 64, 128 and 224 px (3D sets: 64 only).
A scenario names a set as `medmnist:pneumoniamnist`. Only a file whose MD5 matches the official one
is ever returned or kept in the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from medaudit.core import AuditInputError, look_up_option

MEDMNIST_RECORD_URL = "https://zenodo.org/records/10519652/files"
CONNECT_TIMEOUT_S = 60  # per socket operation: connecting and each read
CHUNK_BYTES = 1 << 20

# Official MD5 per set and image size (px), from the medmnist package: MedMNIST/MedMNIST
# medmnist/info.py, __version__ 3.0.2 (commit 805b74237fb5bd2db376fd94e50646b6a8905d9d), `INFO`.
MEDMNIST_MD5: dict[str, dict[int, str]] = {
    "pathmnist": {
        28: "a8b06965200029087d5bd730944a56c1",
        64: "55aa9c1e0525abe5a6b9d8343a507616",
        128: "ac42d08fb904d92c244187169d1fd1d9",
        224: "2c51a510bcdc9cf8ddb2af93af1eadec",
    },
    "chestmnist": {
        28: "02c8a6516a18b556561a56cbdd36c4a8",
        64: "9de6cd0b934ebb5b7426cfba5efbae16",
        128: "db107e5590b27930b62dbaf558aebee3",
        224: "45bd33e6f06c3e8cdb481c74a89152aa",
    },
    "dermamnist": {
        28: "0744692d530f8e62ec473284d019b0c7",
        64: "b70a2f5635c6199aeaa28c31d7202e1f",
        128: "2defd784463fa5243564e855ed717de1",
        224: "8974907d8e169bef5f5b96bc506ae45d",
    },
    "octmnist": {
        28: "c68d92d5b585d8d81f7112f81e2d0842",
        64: "e229e9440236b774d9f0dfef9d07bdaf",
        128: "0a97e76651ace45c5d943ee3f65b63ae",
        224: "abc493b6d529d5de7569faaef2773ba3",
    },
    "pneumoniamnist": {
        28: "28209eda62fecd6e6a2d98b1501bb15f",
        64: "8f4eceb4ccffa70c672198ea285246c6",
        128: "05b46931834c231683c68f40c47b2971",
        224: "d6a3c71de1b945ea11211b03746c1fe1",
    },
    "retinamnist": {
        28: "bd4c0672f1bba3e3a89f0e4e876791e4",
        64: "afda852cc34dcda56f86ad2b2457dbcc",
        128: "e48e916a24454daf90583d4e6efb1a18",
        224: "eae7e3b6f3fcbda4ae613ebdcbe35348",
    },
    "breastmnist": {
        28: "750601b1f35ba3300ea97c75c52ff8f6",
        64: "742edef2a1fd1524b2efff4bd7ba9364",
        128: "363e4b3f8d712e9b5de15470a2aaadf1",
        224: "b56378a6eefa9fed602bb16d192d4c8b",
    },
    "bloodmnist": {
        28: "7053d0359d879ad8a5505303e11de1dc",
        64: "2b94928a2ae4916078ca51e05b6b800b",
        128: "adace1e0ed228fccda1f39692059dd4c",
        224: "b718ff6835fcbdb22ba9eacccd7b2601",
    },
    "tissuemnist": {
        28: "ebe78ee8b05294063de985d821c1c34b",
        64: "123ece2eba09d0aa5d698fda57103344",
        128: "61b955355d7425a89687b06cca3ce0c2",
        224: "b077128c4a949f0a4eb01517f9037b9c",
    },
    "organamnist": {
        28: "68e3f8846a6bd62f0c9bf841c0d9eacc",
        64: "2dcccc29b88e6da5a01161ef20cda288",
        128: "eeae80d0a227a8d099027e1b3cfd3b60",
        224: "50747347e05c87dd3aaf92c49f9f3170",
    },
    "organcmnist": {
        28: "b9ceb9546e10131b32923c5bbeaea2b1",
        64: "3ce34a8724ea6f548e6db4744d03b6a9",
        128: "773c1f009daa3fe5d9a2a201b2a7ed94",
        224: "050f5e875dc056f6768abf94ec9995d1",
    },
    "organsmnist": {
        28: "9ab87b696fb54e2a387ebe992d6ed5f1",
        64: "53a6d115339d874c25e309a994ff46d3",
        128: "ded0c5fa01a95dc4978b956f613e9b8e",
        224: "b354719e553fbbb2513d5533f52a4cb1",
    },
    "organmnist3d": {28: "a0c5a1ff56af4f155c46d46fbb45a2fe", 64: "58a2205adf14a9d0a189cb06dc78bf10"},
    "nodulemnist3d": {28: "8755a7e9e05a4d9ce80a24c3e7a256f3", 64: "c47c5b7d457bf6332200d2ea6d64ecd8"},
    "adrenalmnist3d": {28: "bbd3c5a5576322bc4cdfea780653b1ce", 64: "17721accfe9fb005146a47d33bc54b2f"},
    "fracturemnist3d": {28: "6aa7b0143a6b42da40027a9dda61302f", 64: "f01d7e6316aedf4210da0da5b7437b42"},
    "vesselmnist3d": {28: "b41fd4f7e7e2feedddb201585ecafa1b", 64: "6bb274a8846e1097066dcd64e2c4520f"},
    "synapsemnist3d": {28: "1235b78a3cd6280881dd7850a78eadb6", 64: "43bd14ebf3af9d3dd072446fedc14d5e"},
}


def md5_file(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def medmnist_file_name(name: str, size: int = 28) -> str:
    """The official file name: `{name}.npz` at 28 px, `{name}_{size}.npz` otherwise."""
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


def default_cache_dir() -> Path:
    """`$MEDAUDIT_CACHE/medmnist`, or `~/.cache/medaudit/medmnist` when MEDAUDIT_CACHE is unset."""
    root = os.environ.get("MEDAUDIT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "medaudit"
    return base / "medmnist"


def fetch_medmnist(name: str, *, cache_dir: Path | None = None, base_url: str | None = None, size: int = 28) -> Path:
    """Path to the official MedMNIST `name` file at `size` px, downloaded once into the cache.

    A cached file with the official MD5 is returned without touching the network; any other file
    there is downloaded again. The download streams into a temp file in the cache folder, is checked
    against the official MD5 and only then renamed into place, so a failure leaves nothing behind.
    `base_url` (else env MEDAUDIT_MEDMNIST_URL, else Zenodo record 10519652) serves mirrors and tests.
    """
    look_up_option(name, MEDMNIST_MD5, what="MedMNIST set", where=f"medmnist:{name}")
    sizes = MEDMNIST_MD5[name]
    if size not in sizes:
        raise AuditInputError(f"medmnist:{name}: no official {size} px file; sizes: {', '.join(map(str, sizes))}")
    expected = sizes[size]
    file_name = medmnist_file_name(name, size)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / file_name
    if path.is_file() and md5_file(path) == expected:
        return path

    base = base_url or os.environ.get("MEDAUDIT_MEDMNIST_URL") or MEDMNIST_RECORD_URL
    url = f"{base.rstrip('/')}/{file_name}?download=1"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".part", dir=cache)
    except OSError as err:
        raise AuditInputError(
            f"{cache}: cannot write the MedMNIST cache ({err.strerror}); set MEDAUDIT_CACHE to a writable folder"
        ) from err
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got = _download(url, out)
        if got != expected:
            raise AuditInputError(
                f"downloaded {url} has MD5 {got}, expected {expected}; "
                "the file is corrupt or not the official one; nothing was saved"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _download(url: str, out: BinaryIO) -> str:
    """Stream `url` into `out` in chunks; return the MD5 of what arrived."""
    by_hand = f"download {url} by hand, then give `medaudit demo --data` the folder holding it (`medaudit run --data` the file)"
    # Some hosts refuse urllib's default agent; torchvision (which medmnist uses) sends its own too.
    request = urllib.request.Request(url, headers={"User-Agent": "medaudit"})
    try:
        response = urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise AuditInputError(f"{url}: HTTP {err.code} {err.reason}; {by_hand}") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise AuditInputError(f"{url}: cannot connect ({reason}); {by_hand}") from err
    digest = hashlib.md5()
    received = 0
    with response:
        announced = response.headers.get("Content-Length", "")
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (http.client.HTTPException, OSError) as err:
                raise AuditInputError(
                    f"{url}: download broke off after {received} bytes ({err!r}); "
                    f"nothing was saved; try again or {by_hand}"
                ) from err
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
            received += len(chunk)
    # A short body ends reads quietly; say so rather than report a wrong MD5.
    if announced.isdigit() and received != int(announced):
        raise AuditInputError(
            f"{url}: download broke off after {received} of {announced} bytes; "
            f"nothing was saved; try again or {by_hand}"
        )
    return digest.hexdigest()
