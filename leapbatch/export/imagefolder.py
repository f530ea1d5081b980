"""The `imagefolder` export: one folder per split, its images and its own `metadata.jsonl`.

`datasets.load_dataset("imagefolder", data_dir=DEST)` reads it (a split per folder, `file_name` relative to the
split's folder, the same columns as the output folder's `metadata.jsonl`, docs/dataset.md). Images are named
`<key>_<index>.<ext>`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from leapbatch.export.formats import ExportOptions, Layout
from leapbatch.export.images import ExportImage
from leapbatch.export.staging import Staging


def write(splits: Mapping[str, Sequence[ExportImage]], staging: Staging, options: ExportOptions) -> Layout:
    """Write each split's images and `metadata.jsonl` under `<split>/`."""
    layout = Layout(loader="imagefolder")
    for split, images in splits.items():
        if not images:
            continue
        rows = []
        for image in images:
            file_name = f"{image.name}.{image.ext}"
            staging.write(f"{split}/{file_name}", image.read())
            rows.append(json.dumps({"file_name": file_name, **image.metadata}, ensure_ascii=False))
        staging.write(f"{split}/metadata.jsonl", "".join(row + "\n" for row in rows).encode("utf-8"))
        layout.data_files[split] = f"{split}/*"
    return layout
