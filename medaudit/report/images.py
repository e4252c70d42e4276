"""Example images for the perceptibility section: enlarged with nearest-neighbour scaling, and a 4x centre crop.

Pixels are only repeated, never interpolated, so what the reader sees is what the target was given.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from medaudit.records import Example

DISPLAY_PX = 192  # enlarge small images by an integer factor to at least this many pixels
ZOOM = 4


def _decode(png_b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(png_b64))).copy()


def _uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _enlarge(image: Image.Image) -> Image.Image:
    factor = max(1, -(-DISPLAY_PX // max(image.size)))  # ceil division
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def centre_crop(image: Image.Image, zoom: int = ZOOM) -> Image.Image:
    """The central 1/zoom of the image, scaled up by `zoom` with nearest-neighbour (pixel blocks)."""
    w, h = max(1, image.width // zoom), max(1, image.height // zoom)
    left, top = (image.width - w) // 2, (image.height - h) // 2
    crop = image.crop((left, top, left + w, top + h))
    return crop.resize((w * zoom, h * zoom), Image.Resampling.NEAREST)


def example_panels(example: Example) -> dict:
    """Data URIs for original, adversarial, amplified perturbation and the zoomed centre crops."""
    original, adversarial = _decode(example.original_png), _decode(example.adversarial_png)
    perturbation = _decode(example.perturbation_png)
    return {
        "original": _uri(_enlarge(original)),
        "adversarial": _uri(_enlarge(adversarial)),
        "perturbation": _uri(_enlarge(perturbation)),
        "zoom_original": _uri(_enlarge(centre_crop(original))),
        "zoom_adversarial": _uri(_enlarge(centre_crop(adversarial))),
        "size": f"{original.width}×{original.height}",
        "crop": f"{max(1, original.width // ZOOM)}×{max(1, original.height // ZOOM)}",
    }
