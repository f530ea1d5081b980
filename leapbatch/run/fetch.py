"""Fetch one image into the output folder: stream it (`api.download`), verify and settle it (`folder.images`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from leapbatch.api.download import DEFAULT_MAX_BYTES, host_of, stream_body
from leapbatch.folder.images import ImageStore, StoredImage

if TYPE_CHECKING:
    import httpx  # the download client's type only: httpx's home is leapbatch.api


async def download_image(
    http: httpx.AsyncClient,
    store: ImageStore,
    uri: str,
    *,
    key: str,
    index: int,
    width: int,
    height: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> StoredImage:
    """Fetch one image, verify it, and move it into place; raise `DownloadError` and leave nothing otherwise."""
    where = f"image {index} from {host_of(uri)}"
    part = store.part(key, index, where=where, uri=uri)  # refuses a path outside the folder before any request
    try:
        await stream_body(http, uri, part, where=where, max_bytes=max_bytes)
        return await trio.to_thread.run_sync(store.settle, part, key, index, (width, height))
    finally:
        # After a success `settle` has closed and renamed the file, and both steps are no-ops.
        part.discard()
