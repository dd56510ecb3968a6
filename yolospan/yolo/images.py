"""Images for the AMP check: upstream AutoShape's input handling, its letterbox, and a default picture.

Accepts a file path, a PIL image or a uint8 numpy array (HWC or CHW, grayscale, RGB or RGBA) and
produces the model input as AutoShape does: long side scaled to ``size``, both sides rounded up to
a stride multiple, letterboxed with grey (114). Nothing is downloaded: without an image, a
1080×810 (h×w) picture is drawn at run time, so the check sees upstream's bus.jpg geometry.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from yolospan.yolo.errors import ImageError

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "MAX_IMAGE_PIXELS",
    "ImageSource",
    "LoadedImage",
    "PreparedImage",
    "default_image",
    "letterbox",
    "load_image",
    "prepare_image",
]

ImageSource = str | os.PathLike[str] | Image.Image | np.ndarray | None
"""What the AMP check accepts as its image; None means `default_image`."""

MAX_IMAGE_PIXELS = 1 << 26
"""Pixels an image may have (67 million, e.g. 8192x8192); checked from the header, before decoding."""

DEFAULT_IMAGE_SIZE = (1080, 810)
"""(height, width) of the generated default picture: upstream's bus.jpg geometry."""

_PAD_VALUE = 114


@dataclass(frozen=True)
class LoadedImage:
    """An image as HWC uint8 RGB pixels, with the name messages use for it."""

    pixels: np.ndarray
    name: str


@dataclass(frozen=True)
class PreparedImage:
    """A letterboxed model input and what is needed to map boxes back onto the original image."""

    tensor: torch.Tensor  # 1×3×H×W, values in [0, 1]
    original_shape: tuple[int, int]  # (height, width)
    gain: float
    pad: tuple[float, float]  # (left, top) padding in input pixels
    name: str


def default_image() -> Image.Image:
    """A deterministic street scene of 1080×810 (h×w) pixels, drawn with PIL."""
    height, width = DEFAULT_IMAGE_SIZE
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    sky = np.array([110, 160, 225], np.float32) * (1 - rows) + np.array([225, 230, 235], np.float32) * rows
    picture = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 700, width, height), fill=(90, 90, 95))  # road
    draw.rectangle((0, 680, width, 700), fill=(170, 170, 165))  # kerb
    draw.rectangle((60, 330, 760, 760), fill=(25, 70, 160), outline=(10, 20, 40), width=6)  # bus body
    for left in range(100, 700, 130):
        draw.rectangle((left, 380, left + 100, 500), fill=(190, 215, 235))  # windows
    for centre in (210, 610):
        draw.ellipse((centre - 70, 690, centre + 70, 830), fill=(20, 20, 20))  # wheels
    for x, shade in ((120, (200, 60, 50)), (390, (60, 140, 70)), (690, (230, 190, 60))):
        draw.ellipse((x - 28, 560, x + 28, 616), fill=(225, 185, 150))  # head
        draw.rectangle((x - 40, 616, x + 40, 900), fill=shade)  # body
    return picture


def load_image(source: ImageSource) -> LoadedImage:
    """Read ``source`` into HWC uint8 RGB pixels, honouring EXIF orientation for files and PIL images."""
    if source is None:
        return LoadedImage(np.asarray(default_image()), "default (generated 1080x810)")
    if isinstance(source, (str, os.PathLike)):
        return _from_path(source)
    if isinstance(source, Image.Image):
        return LoadedImage(_pil_pixels(source), getattr(source, "filename", "") or "PIL image")
    if isinstance(source, np.ndarray):
        return LoadedImage(_array_pixels(source), "numpy image")
    raise ImageError(
        f"unsupported image of type {type(source).__name__}: give a file path, a PIL image or a numpy array"
    )


def letterbox(
    pixels: np.ndarray, shape: tuple[int, int], pad_value: int = _PAD_VALUE
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize (bilinear, like OpenCV's INTER_LINEAR) to fit ``shape`` (h, w) and pad the rest evenly.

    Returns the pixels, the scale gain and the (left, top) padding.
    """
    height, width = pixels.shape[:2]
    gain = min(shape[0] / height, shape[1] / width)
    new_w, new_h = max(round(width * gain), 1), max(round(height * gain), 1)  # a 100000x1 image keeps a row
    dw, dh = (shape[1] - new_w) / 2, (shape[0] - new_h) / 2
    if (new_h, new_w) != (height, width):
        pixels = _resize(pixels, new_h, new_w)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    padded = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    return padded, gain, (dw, dh)


def prepare_image(
    source: ImageSource | LoadedImage,
    *,
    size: int = 640,
    stride: int = 32,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> PreparedImage:
    """AutoShape's preprocessing for one image: a 1080×810 picture becomes a 1×3×640×480 tensor."""
    image = source if isinstance(source, LoadedImage) else load_image(source)
    height, width = image.pixels.shape[:2]
    scale = size / max(height, width)
    target = tuple(max(math.ceil(int(side * scale) / stride), 1) * stride for side in (height, width))
    pixels, gain, pad = letterbox(image.pixels, (target[0], target[1]))
    chw = np.ascontiguousarray(pixels.transpose(2, 0, 1))
    tensor = torch.from_numpy(chw).to(device=device, dtype=dtype).div_(255).unsqueeze(0)
    return PreparedImage(tensor, (height, width), gain, pad, image.name)


# --- loading ------------------------------------------------------------------------------------


def _from_path(source: str | os.PathLike[str]) -> LoadedImage:
    text = os.fspath(source)
    if text.startswith(("http://", "https://")):
        raise ImageError(f"{text}: yolospan never downloads; save the image and give its path")
    path = Path(text)
    if not path.exists():
        raise ImageError(f"image not found: {text}")
    if not path.is_file():
        raise ImageError(f"{text}: not a file; give the path of an image")
    try:
        with Image.open(path) as opened:  # reads the header only: the size is known before decoding
            _check_size(opened.width, opened.height, text)
            opened.load()
            pixels = _pil_pixels(opened)
    except UnidentifiedImageError:
        raise ImageError(f"{text}: cannot read the image: not a recognised image format") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageError(f"{text}: cannot read the image: {message}") from None
    return LoadedImage(pixels, text)


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{name}: {width}x{height} pixels is above the limit of {MAX_IMAGE_PIXELS} pixels per image"
        )


def _pil_pixels(image: Image.Image) -> np.ndarray:
    if image.width == 0 or image.height == 0:
        raise ImageError(f"the image is empty ({image.width}x{image.height} pixels)")
    _check_size(image.width, image.height, getattr(image, "filename", "") or "PIL image")
    oriented = ImageOps.exif_transpose(image)
    return np.asarray(oriented.convert("RGB"))


def _array_pixels(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ImageError(f"a numpy image must be uint8 (0-255), got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[0] < 5 and array.shape[2] >= 5:  # CHW, as AutoShape detects it
        array = array.transpose(1, 2, 0)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"a numpy image must be HxW, HxWxC or CxHxW with 1, 3 or 4 channels, got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"the image is empty (shape {array.shape})")
    _check_size(array.shape[1], array.shape[0], "numpy image")
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear without antialiasing and half-pixel centres, as OpenCV's INTER_LINEAR; uint8 out."""
    tensor = torch.tensor(pixels, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)
    resized = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8).squeeze(0).permute(1, 2, 0).numpy()
