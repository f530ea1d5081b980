"""The gallery's data file: a catalog as one compact JSON document, wrapped as a script (`data.js`).

The page is opened from `file://` as often as from a static host, and a page opened from a file may not fetch
JSON, so the data is a script: `window.LEAPBATCH_GALLERY = {...};` and nothing else. The document is JSON (so a
prompt is data, never code: `json.dumps` escapes quotes and control characters, and `<`, `>` and `&` are written
as `\\u003c`, `\\u003e`, `\\u0026`, so no text can close a script or open a tag even if someone inlines the file).

Columns, not rows, so 100,000 jobs stay a few tens of megabytes and parse in a fraction of a second:

    {
      "format": 1,
      "name": "example",                      # the dataset's name
      "revision": "3f2a...",                  # sha256 (16 hex) of everything below: the page reloads on a change
      "folder": "../",                        # the output folder, relative to the gallery folder (ends in /)
      "known": true,                          # false: the folder's manifest is not known ("unknown_why" says why)
      "unknown_why": "",
      "variables": [{"name": "animal", "values": ["cat", "fox", "owl", "red panda"], "axis": 0}, ...],
      "rules": null | {                       # how the manifest chose its jobs (leapbatch.view.catalog.Rules)
        "axes": [{"names": ["animal"], "values": [["cat"], ["fox"], ["owl"]], "size": 3}, ...],
        "excludes": [{"animal": ["owl"], "place": ["city"]}],
        "constants": {"light": "golden"},
        "sample": null | 40, "matrix_jobs": 120
      },
      "statuses": ["done", "pending", "creating", "generating", "failed", "refused"],
      "models": ["26a1a203-..."],             # model ids, referred to by index
      "bodies": [{"steps": 20, "width": 512, "height": 512}],  # each job's request minus prompt,
                                              # negativePrompt and seed: the distinct ones, by index
      "negatives": ["blurry, watermark, text"],
      "jobs": {                               # one list per column, one item per job, in manifest order
        "key": ["9c1e...", ...],
        "vars": [[0, 1, 0], ...],             # per variable (in "variables" order): index into its values, -1 unset
        "prompt": ["a watercolor illustration of a cat in a forest", ...],
        "text": [null, ...],                  # the caption when it differs from the prompt, else null
        "seed": [1234, ...],
        "model": [0, ...], "body": [0, ...], "negative": [0, ...],   # -1: no negative prompt
        "status": [0, ...],                   # index into "statuses"
        "reason": ["", ...],                  # why it has no images yet ("" when done)
        "inference": ["c2b6...", null, ...],
        "images": [[[0, "images/9c1e...-0.png", "<sha256>", 512, 512]], ...]   # index, path in the folder,
                                              # sha256, width, height; the thumbnail is thumbs/<sha256[:32]>.webp
      }
    }

A job's request as sent is `{...bodies[body], prompt, negativePrompt: negatives[negative], seed}` (plus `model`
from "models"); a job reruns exactly from the include entry of its variables and its seed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from leapbatch.view.catalog import Catalog, Status

FORMAT = 1
GLOBAL = "LEAPBATCH_GALLERY"
_APART = ("prompt", "negativePrompt", "seed")
_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


class _Index:
    """Distinct values in order of first use, each referred to by its position."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._seen: dict[str, int] = {}

    def of(self, value: Any) -> int:
        text = json.dumps(value, sort_keys=True)
        found = self._seen.get(text)
        if found is None:
            found = self._seen[text] = len(self.items)
            self.items.append(value)
        return found


def thumb_name(sha256: str) -> str:
    """Return the thumbnail's file name of an image with this content hash (in the gallery's `thumbs/`)."""
    return f"{sha256[:32]}.webp"


def document(catalog: Catalog, *, folder: str) -> dict[str, Any]:
    """Return the gallery's data document of `catalog` (see the module docstring); `folder` ends in `/`."""
    names = [v.name for v in catalog.variables]
    positions = [{label: i for i, label in enumerate(v.values)} for v in catalog.variables]
    statuses = [s.value for s in Status]
    models, bodies, negatives = _Index(), _Index(), _Index()
    columns: dict[str, list[Any]] = {
        name: [] for name in ("key", "vars", "prompt", "text", "seed", "model", "body", "negative", "status", "reason")
    }
    columns["inference"], columns["images"] = [], []
    for entry in catalog.entries:
        request = dict(entry.request)
        rest = {k: v for k, v in request.items() if k not in _APART}
        negative = request.get("negativePrompt")
        columns["key"].append(entry.key)
        columns["vars"].append(
            [
                positions[n].get(entry.variables[name], -1) if name in entry.variables else -1
                for n, name in enumerate(names)
            ]
        )
        columns["prompt"].append(entry.prompt)
        columns["text"].append(None if entry.text == entry.prompt else entry.text)
        columns["seed"].append(entry.seed)
        columns["model"].append(models.of(entry.model_id))
        columns["body"].append(bodies.of(rest))
        columns["negative"].append(-1 if negative is None else negatives.of(negative))
        columns["status"].append(statuses.index(entry.status.value))
        columns["reason"].append(entry.reason)
        columns["inference"].append(entry.inference_id)
        columns["images"].append([[p.index, p.path, p.sha256, p.width, p.height] for p in entry.pictures])
    rules = catalog.rules
    body: dict[str, Any] = {
        "format": FORMAT,
        "name": catalog.name,
        "folder": folder,
        "known": rules is not None,
        "unknown_why": catalog.unknown_why,
        "variables": [{"name": v.name, "values": list(v.values), "axis": v.axis} for v in catalog.variables],
        "rules": None
        if rules is None
        else {
            "axes": [
                {"names": list(a.names), "values": [list(v) for v in a.values], "size": a.size} for a in rules.axes
            ],
            "excludes": [{k: list(v) for k, v in e.items()} for e in rules.excludes],
            "constants": dict(rules.constants),
            "sample": rules.sample,
            "matrix_jobs": rules.matrix_jobs,
        },
        "statuses": statuses,
        "models": models.items,
        "bodies": bodies.items,
        "negatives": negatives.items,
        "jobs": columns,
    }
    revision = hashlib.sha256(_json(body).encode("utf-8")).hexdigest()[:16]
    return {"format": FORMAT, "revision": revision, **{k: v for k, v in body.items() if k != "format"}}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_SAFE)


def script(doc: dict[str, Any]) -> str:
    """Return the text of `data.js`: one assignment of the document to `window.LEAPBATCH_GALLERY`."""
    # U+2028 and U+2029 are valid in JSON and, since ES2019, in script string literals too.
    return f"window.{GLOBAL} = {_json(doc)};\n"
