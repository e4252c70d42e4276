"""MedMNIST fetching against a local http.server (never the internet), and where the demo gets its data.

The served file is a generated stand-in whose MD5 is patched into the official table, so these tests need
no real data; one real-data test checks that the data folder's retinamnist.npz is the official file."""

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
from typer.testing import CliRunner

from medaudit.cli import app
from medaudit.core.errors import AuditInputError
from medaudit.data import medmnist
from medaudit.data.audit_data import load_data
from medaudit.data.medmnist import fetch_medmnist
from medaudit.demo.data import demo_data_path
from medaudit.scenario.threat_model import DataSection
from tests.conftest import write_synthetic_npz

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
            self.wfile.write(body[: served.truncate_to])
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


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> Path:
    """A generated colour .npz standing in for retinamnist.npz: its MD5 is patched in as the official one."""
    path = write_synthetic_npz(tmp_path / "stand-in.npz", channels=3, counts=(40, 8, 20))
    monkeypatch.setitem(medmnist.MEDMNIST_MD5["retinamnist"], 28, medmnist.md5_file(path))
    return path


def _serve(mirror: Mirror, stand_in: Path) -> bytes:
    shutil.copy(stand_in, mirror.root / "retinamnist.npz")
    return stand_in.read_bytes()


def test_official_file_lands_in_cache_and_second_call_is_offline(mirror, tmp_path, stand_in):
    payload = _serve(mirror, stand_in)
    cache = tmp_path / "cache"
    path = fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert path == cache / "retinamnist.npz"
    assert path.read_bytes() == payload
    assert mirror.requests == ["/retinamnist.npz?download=1"]
    assert sorted(p.name for p in cache.iterdir()) == ["retinamnist.npz"]
    with np.load(path) as npz:
        assert npz["train_images"].shape == (40, 16, 16, 3)
    assert fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url) == path
    assert len(mirror.requests) == 1


def test_env_sets_mirror_and_cache(mirror, tmp_path, monkeypatch, stand_in):
    _serve(mirror, stand_in)
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


def test_wrong_content_is_refused_and_nothing_saved(mirror, tmp_path):  # the real official MD5 table
    (mirror.root / "retinamnist.npz").write_bytes(b"not the official file" * 1000)
    cache = tmp_path / "cache"
    with pytest.raises(
        AuditInputError,
        match=rf"downloaded {mirror.url}/retinamnist\.npz\?download=1 has MD5 "
        rf"[0-9a-f]{{32}}, expected {RETINA_MD5}; the file is corrupt "
        r"or not the official one; nothing was saved",
    ):
        fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert list(cache.iterdir()) == []


def test_damaged_cache_file_is_downloaded_again(mirror, tmp_path, stand_in):
    payload = _serve(mirror, stand_in)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "retinamnist.npz").write_bytes(b"half a file")
    path = fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert path.read_bytes() == payload
    assert len(mirror.requests) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["retinamnist.npz"]


def test_broken_off_download_leaves_nothing(mirror, tmp_path, stand_in):
    payload = _serve(mirror, stand_in)
    mirror.truncate_to = 10_000
    cache = tmp_path / "cache"
    with pytest.raises(
        AuditInputError,
        match=rf"retinamnist\.npz\?download=1: download broke off after 10000 of "
        rf"{len(payload)} bytes; nothing was saved; try again or download .* "
        r"\(`medaudit run --data` the file\)$",
    ):
        fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert list(cache.iterdir()) == []


def test_http_404_names_url_and_manual_route(mirror, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(
        AuditInputError,
        match=rf"^{mirror.url}/retinamnist\.npz\?download=1: HTTP 404 .*; download "
        r".* by hand, then give `medaudit demo --data` the folder holding it \(`medaudit run --data` the file\)$",
    ):
        fetch_medmnist("retinamnist", cache_dir=cache, base_url=mirror.url)
    assert list(cache.iterdir()) == []


def test_unreachable_host_names_url_and_manual_route(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(
        AuditInputError,
        match=rf"^{url}/breastmnist\.npz\?download=1: cannot connect .*\(`medaudit run --data` the file\)$",
    ):
        fetch_medmnist("breastmnist", cache_dir=tmp_path / "cache", base_url=url)
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_name_lists_valid_names(mirror, tmp_path):
    with pytest.raises(
        AuditInputError,
        match=r"unknown MedMNIST set 'pneumonimnist'; valid: pathmnist, .*"
        r"pneumoniamnist, .*; did you mean 'pneumoniamnist'\?",
    ):
        fetch_medmnist("pneumonimnist", cache_dir=tmp_path / "cache", base_url=mirror.url)
    assert mirror.requests == []
    assert not (tmp_path / "cache").exists()


def test_data_folder_holds_the_official_retinamnist(retina_path, tmp_path):
    path = demo_data_path(retina_path.parent, tmp_path / "cache")
    assert path == retina_path and medmnist.md5_file(path) == RETINA_MD5
    assert demo_data_path(retina_path, tmp_path / "cache") == retina_path  # the file itself also works
    assert not (tmp_path / "cache").exists()  # a data folder needs no cache and no network
    with np.load(path) as npz:
        assert npz["test_images"].shape == (400, 28, 28, 3)
        assert int((npz["test_labels"] >= 2).sum()) == 180  # referable DR positives


def test_no_data_file_ships_with_the_package():
    from importlib.resources import files

    shipped = sorted(p.name for p in files("medaudit.demo").iterdir() if p.is_file())
    assert "DATA-LICENSE.md" in shipped and not [n for n in shipped if n.endswith((".npz", ".npy", ".csv"))]


def test_demo_without_a_folder_fetches_into_the_cache(mirror, tmp_path, stand_in, monkeypatch):
    payload = _serve(mirror, stand_in)
    monkeypatch.setenv("MEDAUDIT_MEDMNIST_URL", mirror.url)
    path = demo_data_path(None, tmp_path / "cache")
    assert path == tmp_path / "cache" / "medmnist" / "retinamnist.npz" and path.read_bytes() == payload
    assert demo_data_path(None, tmp_path / "cache") == path and len(mirror.requests) == 1


def test_tampered_demo_data_is_refused(tmp_path, stand_in):
    tampered = bytearray(stand_in.read_bytes())
    tampered[-1] ^= 0xFF
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "retinamnist.npz").write_bytes(bytes(tampered))
    expected = medmnist.MEDMNIST_MD5["retinamnist"][28]
    with pytest.raises(
        AuditInputError,
        match=rf"data/retinamnist\.npz: demo data has MD5 [0-9a-f]{{32}}, expected "
        rf"the official {expected}; the demo needs the official MedMNIST",
    ):
        demo_data_path(folder, tmp_path / "cache")


def test_demo_with_a_folder_lacking_the_file_exits_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAUDIT_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert result.stderr == (
        f"medaudit: error: {tmp_path / 'empty' / 'retinamnist.npz'}: demo data not found; put the "
        f"official retinamnist.npz (MedMNIST, MD5 {RETINA_MD5}) in that folder, or drop --data and "
        "MEDAUDIT_DATA to download it\n"
    )


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


def test_data_loader_reads_medmnist_names(mirror, monkeypatch, stand_in):
    _serve(mirror, stand_in)
    monkeypatch.setenv("MEDAUDIT_MEDMNIST_URL", mirror.url)
    data = load_data("medmnist:retinamnist", DataSection(), image_size=16, channels=3, seed=0)
    assert data.test.x.shape == (20, 3, 16, 16)
    assert int(data.test.y.sum()) == 10
    assert mirror.requests == ["/retinamnist.npz?download=1"]
