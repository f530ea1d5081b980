"""Specs of `leapbatch.folder.imagecheck`: magic bytes, media types and full decodes, without any network or disk."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from leapbatch.folder.imagecheck import (
    JPEG,
    MAX_PIXELS,
    PNG,
    WEBP,
    ImageFormat,
    UndecodableError,
    WrongSizeError,
    decode,
    describe_head,
    media_type,
    sniff,
)


def encode(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """Return a noisy RGB image in `fmt` (noise makes the pixel data the bulk of the file)."""
    buffer = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """Return a 1x1 PNG whose header (with a valid checksum) claims `width` x `height`."""
    data = bytearray(encode("PNG", (1, 1)))
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (encode("PNG"), PNG),
        (encode("JPEG"), JPEG),
        (encode("WEBP"), WEBP),
        (encode("GIF"), None),
        (b"<!doctype html>", None),
        (b"RIFF\0\0\0\0WAVE", None),
        (b"\x89PNG", None),
        (b"", None),
    ],
)
def test_sniff_names_the_format_from_magic_bytes(data: bytes, expected: ImageFormat | None) -> None:
    """Only PNG, JPEG and WebP magic bytes name a format."""
    assert expected == sniff(data[:12])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("image/png", "image/png"),
        ("Image/PNG; charset=binary", "image/png"),
        ("  image/webp ;q=1", "image/webp"),
        ("", ""),
        (None, ""),
    ],
)
def test_media_type_strips_parameters_and_case(header: str | None, expected: str) -> None:
    """A Content-Type is compared by its bare lower-case media type."""
    assert expected == media_type(header)


@pytest.mark.parametrize(("head", "expected"), [(b"<html><body>", "starts with 3c68746d6c3e3c62"), (b"", "is empty")])
def test_describe_head(head: bytes, expected: str) -> None:
    """Unknown leading bytes are described by at most 8 bytes of hex."""
    assert expected == describe_head(head)


@pytest.mark.parametrize(("fmt", "name"), [(PNG, "PNG"), (JPEG, "JPEG"), (WEBP, "WEBP")])
def test_decode_returns_the_size(fmt: ImageFormat, name: str) -> None:
    """A good image decodes to its width and height."""
    assert (64, 48) == decode(io.BytesIO(encode(name)), fmt, (64, 48))


def test_decode_refuses_the_wrong_size() -> None:
    """An image of another size than expected is a WrongSizeError naming both sizes."""
    with pytest.raises(WrongSizeError, match=r"^decodes to 64x48, expected 48x64$"):
        decode(io.BytesIO(encode("PNG")), PNG, (48, 64))


def test_decode_refuses_huge_images_without_a_warning() -> None:
    """A header claiming more than MAX_PIXELS is refused before decoding, and Pillow's bomb warning never fires."""
    with pytest.raises(WrongSizeError, match=f"^decodes to 10000x10000, more than {MAX_PIXELS} pixels$"):
        decode(io.BytesIO(png_claiming(10_000, 10_000)), PNG)


@pytest.mark.parametrize(("fmt", "name"), [(PNG, "PNG"), (JPEG, "JPEG"), (WEBP, "WEBP")])
def test_decode_refuses_truncated_images(fmt: ImageFormat, name: str) -> None:
    """Every format's truncated file is an UndecodableError (a JPEG only fails when its pixels are decoded)."""
    data = encode(name)
    with pytest.raises(UndecodableError, match=f"^does not decode as {fmt.name} "):
        decode(io.BytesIO(data[: len(data) // 2]), fmt)


def test_decode_refuses_bytes_of_another_format() -> None:
    """JPEG bytes do not decode as a PNG."""
    with pytest.raises(UndecodableError, match=r"^does not decode as PNG \(not a PNG file\)$"):
        decode(io.BytesIO(encode("JPEG")), PNG)
