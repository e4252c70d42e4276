"""MedMNIST fetching against a local http.server (never the internet) and the bundled demo data."""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
import urllib.error
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from medaudit import medmnist
from medaudit.data import load_data
from medaudit.demo import data as demo_data
from medaudit.demo.data import demo_data_path
from medaudit.errors import AuditInputError
from medaudit.medmnist import fetch_medmnist
from medaudit.scenario import DataSection

RETINA = Path(__file__).resolve().parents[2] / "shared" / "data" / "retinamnist.npz"
RETINA_MD5 = "bd4c0672f1bba3e3a89f0e4e876791e4"  # official, MedMNIST/MedMNIST medmnist/info.py


@dataclass
class Mirror:
    """A local MedMNIST mirror: files in `root`, served at `url`; `requests` logs each GET path."""

    root: Path
    url: str
    requests: list[str] = field(default_factory=list)
    truncate_to: int | None = None  # if set, announce the full length but send only this many bytes


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    served = Mirror(root=root, url="")

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            served.requests.append(self.path)
            if served.truncate_to is None:
                return super().do_GET()
            body = (root / self.path.split("?")[0].lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:served.truncate_to])
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def offline_defaults(tmp_path, monkeypatch):
    """A test that forgets base_url hits a closed local port and a temp cache, never Zenodo or ~."""
    monkeypatch.setenv("MEDAUDIT_MEDMNIST_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("MEDAUDIT_CACHE", str(tmp_path / "env-cache"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _retina() -> Path:
    if not RETINA.is_file():
        pytest.fail(f"{RETINA} missing: the tests need ../shared/data beside the checkout")
    return RETINA


def test_official_file_lands_in_cache_and_second_call_is_offline(mirror, tmp_path):
    shutil.copy(_retina(), mirror.root / "retinamnist.npz")
    cache = tmp_path / "cache"
    path = fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert path == cache / "retinamnist.npz"
    assert medmnist.md5_file(path) == RETINA_MD5
    assert mirror.requests == ["/retinamnist.npz?download=1"]
    assert sorted(p.name for p in cache.iterdir()) == ["retinamnist.npz"]
    with np.load(path) as npz:
        assert npz["train_images"].shape == (1080, 28, 28, 3)
    assert fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url) == path
    assert len(mirror.requests) == 1


def test_env_sets_mirror_and_cache(mirror, tmp_path, monkeypatch):
    shutil.copy(_retina(), mirror.root / "retinamnist.npz")
    monkeypatch.setenv("MEDAUDIT_MEDMNIST_URL", mirror.url + "/")
    monkeypatch.setenv("MEDAUDIT_CACHE", str(tmp_path / "mine"))
    path = fetch_medmnist("retinamnist")
    assert path == tmp_path / "mine" / "medmnist" / "retinamnist.npz"
    assert mirror.requests == ["/retinamnist.npz?download=1"]


def test_larger_size_uses_official_file_name(mirror, tmp_path, monkeypatch):
    payload = b"stand-in for retinamnist_64.npz"
    (mirror.root / "retinamnist_64.npz").write_bytes(payload)
    monkeypatch.setitem(medmnist.MEDMNIST_MD5["retinamnist"], 64, hashlib.md5(payload).hexdigest())
    path = fetch_medmnist("retinamnist", cache_dir=tmp_path / "cache", base_url=mirror.url, size=64)
    assert path.name == "retinamnist_64.npz" and path.read_bytes() == payload
    assert mirror.requests == ["/retinamnist_64.npz?download=1"]


def test_size_without_official_file_is_refused(mirror, tmp_path):
    with pytest.raises(AuditInputError, match=r"medmnist:nodulemnist3d: no official 128 px file; sizes: 28, 64"):
        fetch_medmnist("nodulemnist3d", cache_dir=tmp_path / "cache", base_url=mirror.url, size=128)
    assert mirror.requests == []


def test_wrong_content_is_refused_and_nothing_saved(mirror, tmp_path):
    (mirror.root / "retinamnist.npz").write_bytes(b"not the official file" * 1000)
    cache = tmp_path / "cache"
    with pytest.raises(AuditInputError, match=rf"downloaded {mirror.url}/retinamnist\.npz\?download=1 has MD5 "
                                              rf"[0-9a-f]{{32}}, expected {RETINA_MD5}; the file is corrupt "
                                              r"or not the official one; nothing was saved"):
        fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert list(cache.iterdir()) == []


def test_damaged_cache_file_is_downloaded_again(mirror, tmp_path):
    shutil.copy(_retina(), mirror.root / "retinamnist.npz")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "retinamnist.npz").write_bytes(b"half a file")
    path = fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert medmnist.md5_file(path) == RETINA_MD5
    assert len(mirror.requests) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["retinamnist.npz"]


def test_broken_off_download_leaves_nothing(mirror, tmp_path):
    shutil.copy(_retina(), mirror.root / "retinamnist.npz")
    mirror.truncate_to = 100_000
    cache = tmp_path / "cache"
    with pytest.raises(AuditInputError, match=r"retinamnist\.npz\?download=1: download broke off after 100000 of "
                                              r"3291041 bytes; nothing was saved; try again or download .* --data$"):
        fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert list(cache.iterdir()) == []


def test_http_404_names_url_and_manual_route(mirror, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(AuditInputError, match=rf"^{mirror.url}/retinamnist\.npz\?download=1: HTTP 404 .*; download "
                                              r".* by hand and pass the \.npz path with --data$"):
        fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert list(cache.iterdir()) == []


def test_unreachable_host_names_url_and_manual_route(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(AuditInputError, match=rf"^{url}/breastmnist\.npz\?download=1: cannot connect .*--data$"):
        fetch_medmnist("breastmnist", cache_dir=tmp_path / "cache", base_url=url)
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_name_lists_valid_names(mirror, tmp_path):
    with pytest.raises(AuditInputError, match=r"unknown MedMNIST set 'pneumonimnist'; valid: pathmnist, .*"
                                              r"pneumoniamnist, .*; did you mean 'pneumoniamnist'\?"):
        fetch_medmnist("pneumonimnist", cache_dir=tmp_path / "cache", base_url=mirror.url)
    assert mirror.requests == []
    assert not (tmp_path / "cache").exists()


def test_demo_data_is_the_official_retinamnist():
    path = demo_data_path()
    assert path.name == "retinamnist.npz"
    assert medmnist.md5_file(path) == RETINA_MD5 == demo_data.DEMO_MD5
    assert (path.parent / "DATA-LICENSE.md").is_file()
    with np.load(path) as npz:
        assert npz["test_images"].shape == (400, 28, 28, 3)
        assert int((npz["test_labels"] >= 2).sum()) == 180  # referable DR positives


def test_tampered_demo_data_is_refused(tmp_path, monkeypatch):
    tampered = bytearray(demo_data_path().read_bytes())
    tampered[-1] ^= 0xFF
    (tmp_path / "retinamnist.npz").write_bytes(bytes(tampered))
    monkeypatch.setattr(demo_data, "files", lambda package: tmp_path)
    with pytest.raises(AuditInputError, match=rf"retinamnist\.npz: bundled demo data has MD5 [0-9a-f]{{32}}, "
                                              rf"expected the official {RETINA_MD5}; .*reinstall medaudit"):
        demo_data_path()


def test_missing_demo_data_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_data, "files", lambda package: tmp_path)
    with pytest.raises(AuditInputError, match=r"retinamnist\.npz: bundled demo data is missing; reinstall medaudit"):
        demo_data_path()


def test_default_url_is_the_official_zenodo_record(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDAUDIT_MEDMNIST_URL")
    asked = []

    def no_network(request, timeout):
        asked.append((request.full_url, timeout))
        raise urllib.error.URLError("offline in tests")

    monkeypatch.setattr(medmnist.urllib.request, "urlopen", no_network)
    with pytest.raises(AuditInputError, match=r"cannot connect \(offline in tests\)"):
        fetch_medmnist("pneumoniamnist", cache_dir=tmp_path / "cache", size=224)
    assert asked == [("https://zenodo.org/records/10519652/files/pneumoniamnist_224.npz?download=1", 60)]


def test_data_loader_reads_medmnist_names(mirror, monkeypatch):
    shutil.copy(_retina(), mirror.root / "retinamnist.npz")
    monkeypatch.setenv("MEDAUDIT_MEDMNIST_URL", mirror.url)
    data = load_data("medmnist:retinamnist", DataSection(positive_labels=(2, 3, 4)), image_size=16, channels=3,
                     seed=0)
    assert data.test.x.shape == (400, 3, 16, 16)
    assert int(data.test.y.sum()) == 180
    assert mirror.requests == ["/retinamnist.npz?download=1"]
