"""Pure checks of image bytes: which format the magic bytes name, what a Content-Type says, whether Pillow decodes.

Three formats are accepted, the ones Leap's image host serves or may serve: PNG, JPEG and WebP. A format is
recognised by its magic bytes, never by a file name or a header alone; the Content-Type must then agree with it.

Decoding opens the file with the format's own Pillow plugin class instead of `Image.open`: `Image.open` warns
(`DecompressionBombWarning`) on huge images, and a warning is either noise on stderr or, under `-W error`, an
exception of the wrong kind. Checking `width * height` against `MAX_PIXELS` ourselves, before any pixel is
decoded, refuses the same images without a warning and without touching Pillow's global settings from a thread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from PIL import ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

# 8192 x 8192: twice the side of Leap's largest output (1024 upscaled x4), and below Pillow's own warning threshold.
MAX_PIXELS = 8192 * 8192
# Enough bytes to tell every accepted format apart.
MAGIC_LENGTH = 12


@dataclass(frozen=True, slots=True)
class ImageFormat:
    """One accepted image format: its name, file extension, media type and Pillow plugin."""

    name: str
    ext: str
    content_type: str
    plugin: type[ImageFile.ImageFile]


PNG = ImageFormat("PNG", "png", "image/png", PngImagePlugin.PngImageFile)
JPEG = ImageFormat("JPEG", "jpg", "image/jpeg", JpegImagePlugin.JpegImageFile)
WEBP = ImageFormat("WebP", "webp", "image/webp", WebPImagePlugin.WebPImageFile)
FORMATS = (PNG, JPEG, WEBP)
CONTENT_TYPES = frozenset(fmt.content_type for fmt in FORMATS)


class ImageError(Exception):
    """Raised when image bytes are not the image wanted; the message says what is wrong."""


class WrongSizeError(ImageError):
    """Raised when an image is not the size expected, or has more than `MAX_PIXELS` pixels."""


class UndecodableError(ImageError):
    """Raised when Pillow cannot decode the bytes (corrupt or truncated)."""


def sniff(head: bytes) -> ImageFormat | None:
    """Return the format the leading bytes announce, or None if they are not a PNG, JPEG or WebP."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def media_type(content_type: str | None) -> str:
    """Return the bare, lower-case media type of a Content-Type header (`""` when there is none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def describe_head(head: bytes) -> str:
    """Describe leading bytes that match no format, for a one-line message (hex, at most 8 bytes)."""
    return f"starts with {head[:8].hex()}" if head else "is empty"


def decode(fp: BinaryIO, fmt: ImageFormat, expect: tuple[int, int] | None = None) -> tuple[int, int]:
    """Decode the whole image with `fmt`'s plugin and return its `(width, height)`, or raise `ImageError`.

    The size is checked (against `expect` and `MAX_PIXELS`) from the header, before any pixel is decoded.
    `verify()` checks the structure (PNG chunk checksums), but leaves the object unusable and skips the pixel
    data of most formats, so the file is opened a second time and every pixel is decoded: a truncated JPEG
    passes `verify()` and only fails in `load()`.
    """
    try:
        fp.seek(0)
        with fmt.plugin(fp) as image:
            width, height = image.size
            if expect is not None and (width, height) != expect:
                raise WrongSizeError(f"decodes to {width}x{height}, expected {expect[0]}x{expect[1]}")
            if width * height > MAX_PIXELS:
                raise WrongSizeError(f"decodes to {width}x{height}, more than {MAX_PIXELS} pixels")
            image.verify()
        fp.seek(0)
        with fmt.plugin(fp) as image:
            image.load()
    # Pillow reports a corrupt file as SyntaxError, a truncated one as OSError, and a few malformed headers as
    # the errors of the struct parsing underneath.
    except (SyntaxError, OSError, EOFError, ValueError, IndexError, TypeError, struct.error) as exc:
        raise UndecodableError(f"does not decode as {fmt.name} ({_reason(exc)})") from None
    return width, height


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:120] if text else exc.__class__.__name__
