"""The images an export holds: the dataset's finished jobs, each image read once, checked and tagged.

`export_images` lists them in ledger order (the order the folder's `metadata.jsonl` has), each with its metadata
row (the same columns, `docs/dataset.md`), its caption, and the request and variables behind it. `ExportImage.read`
opens the original without following a link, checks its size and sha256 against the ledger (`ExportError`
otherwise: an export never carries an image the ledger does not vouch for) and returns the bytes to write: for a
PNG, the downloaded bytes with a `parameters` text chunk added (`pngtext`), for any other format, the bytes as they
are. The folder's files are only read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from leapbatch.errors import EXIT_SOME_FAILED, LeapbatchError
from leapbatch.export.pngtext import is_png, parameters_text, tagged
from leapbatch.folder.atomic import open_file, shown
from leapbatch.folder.records import ImageRecord
from leapbatch.folder.results import metadata_row, variable_columns
from leapbatch.folder.state import JobState, LedgerState, Phase
from leapbatch.jobs import Scalar
from leapbatch.wire import CreateInferenceDto

PARAMETERS_KEYWORD = "parameters"
_REQUEST_FIELDS = tuple(name for name in CreateInferenceDto.model_fields if name != "webhook_url")
_REPAIR_HINT = "run `leapbatch verify {out} --repair` to fetch it again, then export again"


class ExportError(LeapbatchError):
    """The folder cannot be exported as it is: an image is missing or differs from the ledger (exit 1)."""

    exit_code = EXIT_SOME_FAILED


@dataclass(frozen=True, slots=True)
class ExportImage:
    """One image of the export: where its original is, what the ledger says of it, and its dataset row."""

    name: str  # `<key>_<index>`: the export's stem for it, free of dots (a WebDataset key)
    folder: Path
    record: ImageRecord
    text: str  # its caption
    model_id: str
    inference_id: str | None
    request: Mapping[str, Any]  # snake_case, as sent (no webhook)
    variables: Mapping[str, Scalar]
    metadata: Mapping[str, Any]  # its `metadata.jsonl` row, without `file_name`, `text` set to the caption
    tick: Callable[[], None] | None = field(default=None, compare=False)  # called once its bytes are read

    def ticking(self, tick: Callable[[], None]) -> ExportImage:
        """Return this image, calling `tick` each time its bytes are read (a progress bar counts them)."""
        return replace(self, tick=tick)

    @property
    def key(self) -> str:
        """Return the key of the image's job."""
        return str(self.metadata["key"])

    @property
    def ext(self) -> str:
        """Return the original's file extension (`png`, `jpg`, `webp`)."""
        return self.record.path.rsplit(".", 1)[-1]

    def read(self) -> bytes:
        """Return the bytes to export: the original, checked against the ledger, with its parameters if a PNG."""
        path = self.folder / self.record.path
        try:
            fd = open_file(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ExportError(
                f"{shown(path)}: the image is missing", hint=_REPAIR_HINT.format(out=self.folder)
            ) from None
        try:
            data = os.read(fd, self.record.bytes + 1)  # a regular file (checked): one read returns it all
        finally:
            os.close(fd)
        if len(data) != self.record.bytes or hashlib.sha256(data).hexdigest() != self.record.sha256:
            raise ExportError(
                f"{shown(path)}: the image differs from the ledger (size or sha256)",
                hint=_REPAIR_HINT.format(out=self.folder),
            )
        if self.tick is not None:
            self.tick()
        if not is_png(data):
            return data
        text = parameters_text(self.request, self.model_id, self.record.width, self.record.height)
        return tagged(data, PARAMETERS_KEYWORD, text)

    def sidecar(self) -> dict[str, Any]:
        """Return the JSON document that travels with the image (WebDataset's `key.json`): its job and its origin.

        Its shape is the same for every image of an export, as readers that infer a schema from the first samples
        need: every request field (null when not sent; `prompt_strength` a float), every variable of the export
        (as text, null for a job without it).
        """
        request = {name: self.request.get(name) for name in _REQUEST_FIELDS}
        if request["prompt_strength"] is not None:
            request["prompt_strength"] = float(request["prompt_strength"])
        variables = {name[4:]: value for name, value in self.metadata.items() if name.startswith("var_")}
        return {
            "key": self.key,
            "index": self.record.index,
            "model_id": self.model_id,
            "inference_id": self.inference_id,
            "request": request,
            "variables": variables,
            "sha256": self.record.sha256,
            "width": self.record.width,
            "height": self.record.height,
            "text": self.text,
        }


Captioner = Callable[[JobState, str], str]  # (the job, its dataset caption) -> the export's caption


def export_images(
    folder: Path, state: LedgerState, captions: Mapping[str, str | None], captioner: Captioner | None = None
) -> list[ExportImage]:
    """Return the images of the dataset's finished jobs (`captions`: the dataset's keys -> caption, None: prompt)."""
    finished = [js for js in state.jobs.values() if js.phase is Phase.FINISHED and js.key in captions]
    names = variable_columns(finished)
    out = []
    for js in finished:
        request = CreateInferenceDto.model_validate(js.request).model_dump(exclude={"webhook_url"}, exclude_none=True)
        caption = captions[js.key]
        text = request["prompt"] if caption is None else caption
        if captioner is not None:
            text = captioner(js, text)
        for image in js.images:
            row = metadata_row(js, image, text, names)
            del row["file_name"]
            out.append(
                ExportImage(
                    name=f"{js.key}_{image.index}",
                    folder=folder,
                    record=image,
                    text=text,
                    model_id=js.model,
                    inference_id=js.inference_id,
                    request=request,
                    variables=js.variables,
                    metadata=row,
                )
            )
    return out
