"""`--caption TEMPLATE`: captions made at export time, in the manifest's template language.

A name is any of the job's variables, `caption` (the dataset's caption: the manifest's `caption:`, else the
prompt), `model`, or a request field as sent (`prompt`, `negative_prompt`, `seed`, `steps`, `width`, ...); a
variable wins over a request field of the same name. A template that does not parse, or a name some job cannot
fill, is a `UsageError` before anything is written.
"""

from __future__ import annotations

from typing import Any

from leapbatch.errors import UsageError
from leapbatch.export.images import Captioner
from leapbatch.folder.state import JobState
from leapbatch.manifest.template import TemplateError, parse
from leapbatch.wire import CreateInferenceDto


def caption_values(js: JobState, caption: str) -> dict[str, Any]:
    """Return the names a caption template may use for job `js`, with their values."""
    request = CreateInferenceDto.model_validate(js.request).model_dump(exclude={"webhook_url"}, exclude_none=True)
    return {**request, "model": js.model, "caption": caption, **js.variables}


def captioner(text: str) -> Captioner:
    """Return the captioner of a `--caption` template (`UsageError` if it does not parse)."""
    try:
        template = parse(text)
    except TemplateError as exc:
        raise UsageError(f"--caption: {exc.message} (at character {exc.column})", hint=exc.hint) from None

    def caption(js: JobState, current: str) -> str:
        values = caption_values(js, current)
        missing = [name for name in template.names if name not in values]
        if missing:
            raise UsageError(
                f"--caption: job {js.key[:12]} has no {{{missing[0]}}}",
                hint="names: " + ", ".join(sorted(values)),
            )
        return template.render(values)

    return caption
