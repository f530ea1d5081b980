"""PNG text chunks: the generation parameters written into an exported copy, the image data left untouched.

`tagged(png, keyword, text)` inserts one text chunk right after the IHDR chunk: `tEXt` when the text is Latin-1,
else an uncompressed `iTXt` (UTF-8), as Pillow's `PngInfo.add_text` does. Nothing else changes, so the pixels are
the downloaded ones and inserting costs a copy, not a re-encode. `parameters_text` writes the widely used
`parameters` convention (AUTOMATIC1111's web UI and the tools that read it): the prompt, a `Negative prompt:` line,
then `Key: value` pairs.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_END = len(PNG_SIGNATURE) + 8 + 13 + 4  # signature, IHDR length + type, its 13 bytes, its CRC


def is_png(data: bytes) -> bool:
    """Return whether `data` starts like a PNG with its IHDR chunk first."""
    return data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def text_chunk(keyword: str, text: str) -> bytes:
    """Return a `tEXt` chunk (Latin-1 text) or an uncompressed `iTXt` chunk (any other text) for `keyword`."""
    name = keyword.encode("latin-1")
    text = text.replace("\x00", " ")  # neither chunk may hold a NUL in its text
    try:
        return _chunk(b"tEXt", name + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        # keyword, NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL, text
        return _chunk(b"iTXt", name + b"\x00\x00\x00\x00\x00" + text.encode("utf-8", "replace"))


def tagged(png: bytes, keyword: str, text: str) -> bytes:
    """Return `png` with a text chunk for `keyword` after its IHDR chunk (ValueError if it is not a PNG)."""
    if not is_png(png):
        raise ValueError("not a PNG")
    return png[:_IHDR_END] + text_chunk(keyword, text) + png[_IHDR_END:]


def parameters_text(request: Mapping[str, Any], model_id: str, width: int, height: int) -> str:
    """Return the `parameters` text of an image: prompt, `Negative prompt:` line, then the settings on one line."""
    lines = [str(request.get("prompt", ""))]
    if request.get("negative_prompt"):
        lines.append(f"Negative prompt: {request['negative_prompt']}")
    settings = [("Steps", request.get("steps")), ("Sampler", request.get("sampler"))]
    settings += [("CFG scale", request.get("prompt_strength")), ("Seed", request.get("seed"))]
    settings += [("Size", f"{width}x{height}"), ("Model", model_id)]
    lines.append(", ".join(f"{name}: {value}" for name, value in settings if value is not None))
    return "\n".join(lines)
