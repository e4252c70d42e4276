"""No image made from the data is committed: the data files' licences and the project's rule allow neither the
files nor copies or slices of them in the repository. Results written by audits embed example images (PNG,
base64) for their reports; anything committed under docs/ or benchmarks/ must have had them removed."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"  # a PNG file's first bytes
PNG_BASE64 = base64.b64encode(PNG_MAGIC)[:10]  # the same bytes as base64 (results.json embeds examples so)
JPEG_MAGIC = b"\xff\xd8\xff"  # a JPEG file's first bytes
NPZ_IMAGE_KEYS = (b"_images.npy",)  # a MedMNIST-style archive member name


def tree_files(root: Path) -> list[Path]:
    """What is or could be committed: git's tracked and not-ignored files (a demo's output folder is ignored);
    every file but the usual build folders where the checkout has no git."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, capture_output=True
    )
    if listed.returncode == 0:
        return [root / name for name in listed.stdout.decode().split("\0") if name and (root / name).is_file()]
    return [p for p in root.rglob("*") if p.is_file() and not SKIPPED & set(p.relative_to(root).parts)]


def image_inside(blob: bytes) -> str | None:
    """What image-like content the bytes hold, or None."""
    if blob.startswith(PNG_MAGIC) or blob.startswith(JPEG_MAGIC):
        return "an image file"
    if PNG_BASE64 in blob:
        return "a base64 PNG"
    if blob.startswith(b"PK") and any(key in blob for key in NPZ_IMAGE_KEYS):
        return "an .npz holding images"
    return None


@pytest.mark.parametrize(
    "blob, expected",
    [
        (PNG_MAGIC + b"rest", "an image file"),
        (b'{"original_png": "' + base64.b64encode(PNG_MAGIC + b"IHDR") + b'"}', "a base64 PNG"),
        (b"PK\x03\x04...test_images.npy...", "an .npz holding images"),
        (b'{"auc": 0.9}', None),
        (b"PK\x03\x04...scores.npy...labels.npy", None),  # per-image score files are numbers, not images
    ],
)
def test_the_detector_tells_images_from_numbers(blob, expected):
    assert image_inside(blob) == expected


def test_no_file_in_the_tree_holds_an_image_of_the_data():
    found = [f"{p.relative_to(ROOT)}: {what}" for p in tree_files(ROOT) if (what := image_inside(p.read_bytes()))]
    assert found == []
