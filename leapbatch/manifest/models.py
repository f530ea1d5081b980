"""The manifest format, version 1: its pydantic models, field types and caps, and the checked `Manifest`.

Declarations only. The models say what each key may hold (strictly: no `"30"` for 30, no `no` for "no", unknown
keys refused); `FIELD_TYPES` gives the same rules for request fields set by axes and include entries; `error_hint`
turns a pydantic error into the hint the format knows best. `leapbatch.manifest` loads files into these types, with
`manifest_check` doing the checks that need more than one key; `leapbatch schema` prints `json_schema()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.json_schema import SkipJsonSchema

from leapbatch.errors import Problem
from leapbatch.jobs import Scalar
from leapbatch.manifest import wording
from leapbatch.manifest.safe_yaml import Loc, Locator
from leapbatch.manifest.template import NAME_PATTERN, Template
from leapbatch.pricing import DEFAULT_PRESET, Price
from leapbatch.wire import Sampler, Upscale

MAX_JOBS = 1_000_000
MAX_AXES = 32
MAX_TEXT = 10_000
MAX_SIDE = 2048
MAX_STEPS = 500
MAX_SEED = 2**31 - 1
MAX_EXCLUDE = 256

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MODEL_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
VAR_RE = rf"^{NAME_PATTERN}$"
PATTERN_HINTS = {
    NAME_RE: "use up to 64 letters, digits, - and _, starting with a letter or digit",
    MODEL_RE: "a model id uses letters, digits, - and _, e.g. 26a1a203-3a46-42cb-8cfa-f4de075907d8",
}

# Request fields, in the order the docs list them; `model` is the URL's model id, the rest go in the body.
REQUEST_FIELDS = (
    "model",
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "width",
    "height",
    "number_of_images",
    "prompt_strength",
    "version",
    "enhance_prompt",
    "restore_faces",
    "upscale_by",
    "sampler",
)
TEMPLATE_FIELDS = ("prompt", "negative_prompt")

ModelId = Annotated[StrictStr, StringConstraints(pattern=MODEL_RE)]
PromptText = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_TEXT)]
NegativeText = Annotated[StrictStr, StringConstraints(max_length=MAX_TEXT)]
Steps = Annotated[StrictInt, Field(ge=1, le=MAX_STEPS)]
Side = Annotated[StrictInt, Field(ge=8, le=MAX_SIDE, multiple_of=8)]
ImageCount = Annotated[StrictInt, Field(ge=1, le=4)]
Strength = Annotated[float, Field(ge=0, le=30)]
Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]
LegacyVersion = Annotated[StrictStr, StringConstraints(min_length=1, max_length=200)]

_SCALAR_SCHEMA: dict[str, Any] = {"type": ["string", "number", "boolean"]}
_AXIS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "minItems": 1, "items": {"anyOf": [_SCALAR_SCHEMA, {"type": "object"}]}},
        {
            "type": "object",
            "properties": {
                "range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                "step": {"type": "integer", "minimum": 1},
            },
            "required": ["range"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"values_file": {"type": "string", "minLength": 1}},
            "required": ["values_file"],
            "additionalProperties": False,
        },
    ]
}
_INCLUDE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "properties": {"file": {"type": "string", "pattern": r"\.([cC][sS][vV]|[jJ][sS][oO][nN][lL])$"}},
            "required": ["file"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "minProperties": 1,
            "not": {"required": ["file"]},
            "additionalProperties": _SCALAR_SCHEMA,
        },
    ]
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Params(_Strict):
    """Request defaults for every job; a matrix axis or include entry of the same name overrides them."""

    steps: Steps = Field(30, description="Denoising steps (1-500).")
    width: Side = Field(512, description="Image width: a multiple of 8, 8-2048.")
    height: Side = Field(512, description="Image height: a multiple of 8, 8-2048.")
    number_of_images: ImageCount = Field(1, description="Images per job (1-4).")
    prompt_strength: Strength = Field(7, description="How closely to follow the prompt (0-30).")
    seed: Seed | SkipJsonSchema[None] = Field(None, description="One seed for every job (default: derived per job).")
    version: LegacyVersion | SkipJsonSchema[None] = Field(None, description="Legacy: model version id.")
    enhance_prompt: StrictBool | SkipJsonSchema[None] = Field(None, description="Legacy: let Leap enhance prompts.")
    restore_faces: StrictBool | SkipJsonSchema[None] = Field(None, description="Legacy: restore faces.")
    upscale_by: Upscale | SkipJsonSchema[None] = Field(None, description="Legacy: x1, x2 or x4.")
    sampler: Sampler | SkipJsonSchema[None] = Field(None, description="Legacy: the sampler.")


class Limits(_Strict):
    """How hard a run may push the API."""

    requests_per_second: Annotated[float, Field(gt=0, le=1000)] = Field(10.0, description="API requests per second.")
    burst: Annotated[StrictInt, Field(ge=1, le=1000)] = Field(32, description="Requests allowed at once after a lull.")
    max_in_flight: Annotated[StrictInt, Field(ge=1, le=256)] = Field(32, description="Jobs generating at once.")
    job_timeout: Annotated[float, Field(gt=0, le=86_400)] = Field(600.0, description="Seconds before a job is failed.")


class Cleanup(_Strict):
    """What to do with the remote jobs once their images are safe on disk."""

    delete_remote: Literal["never", "after_download"] = "never"


class Output(_Strict):
    """Where a run writes its images, ledger and metadata."""

    dir: Annotated[StrictStr, StringConstraints(min_length=1, max_length=4096)] | SkipJsonSchema[None] = Field(
        None, description="Output folder, relative to the current directory (default: outputs/<name>)."
    )


Amount = Annotated[float, Field(ge=0, le=1_000_000_000, allow_inf_nan=False)]
PresetName = Literal["payg", "starter", "creator", "professional"]  # leapbatch.pricing.PRESETS (a test checks)


class Pricing(_Strict):
    """What a job costs, for `plan`'s estimate, the budget caps and the consent prompt (one of the three forms)."""

    preset: PresetName | SkipJsonSchema[None] = Field(
        None, description="One of Leap's published plans: payg (default), starter, creator, professional."
    )
    per_image: Amount | SkipJsonSchema[None] = Field(None, description="Your price per image.")
    per_gpu_second: Amount | SkipJsonSchema[None] = Field(
        None, description="Your price per GPU second, for a time-priced backend (from the runner's duration model)."
    )
    currency: Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        "USD", description="The currency of the prices and of budget.max_usd (a label; nothing is converted)."
    )
    included_images_left: Annotated[StrictInt, Field(ge=0, le=100_000_000)] = Field(
        0, description="Images your plan's monthly quota still covers: the first ones a run creates cost nothing."
    )


class Budget(_Strict):
    """Caps on what the folder may commit, counted from its ledger across runs, and when a run asks first."""

    max_usd: Amount | SkipJsonSchema[None] = Field(None, description="Most the folder may spend (pricing currency).")
    max_images: Annotated[StrictInt, Field(ge=0, le=100_000_000)] | SkipJsonSchema[None] = Field(
        None, description="Most images the folder may create."
    )
    confirm_above: Amount = Field(10.0, description="A run estimated to cost more asks first (--yes to skip).")


class Sample(_Strict):
    """Keep a seeded, prefix-stable subset of the matrix jobs."""

    count: Annotated[StrictInt, Field(ge=1, le=MAX_JOBS)]
    seed: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] = 0


class ManifestSpec(_Strict):
    """A leapbatch manifest, format version 1 (see docs/manifest.md)."""

    model_config = ConfigDict(title="leapbatch manifest (version 1)")

    version: Literal[1] = Field(description="Format version: 1.")
    name: Annotated[StrictStr, StringConstraints(pattern=NAME_RE)] = Field(description="Dataset name.")
    model: ModelId | SkipJsonSchema[None] = Field(None, description="Default model id.")
    prompt: PromptText | SkipJsonSchema[None] = Field(None, description="Prompt template: {name} = an axis or var.")
    negative_prompt: NegativeText | SkipJsonSchema[None] = Field(None, description="Negative prompt template.")
    caption: NegativeText | SkipJsonSchema[None] = Field(
        None, description="Caption template: the dataset's text for each image (default: the rendered prompt)."
    )
    vars: Annotated[
        dict[str, Any],
        WithJsonSchema({"type": "object", "additionalProperties": {"type": ["string", "number"]}}),
    ] = Field(default_factory=dict, description="Constant template variables.")
    params: Params = Field(default_factory=Params)
    matrix: Annotated[dict[str, Any], WithJsonSchema({"type": "object", "additionalProperties": _AXIS_SCHEMA})] = Field(
        default_factory=dict, description="Axes whose cartesian product gives the jobs."
    )
    exclude: Annotated[
        list[dict[str, Any]],
        WithJsonSchema({"type": "array", "items": {"type": "object", "minProperties": 1}}),
    ] = Field(default_factory=list, description="Drop every combination that matches all keys of an entry.")
    include: Annotated[
        list[dict[str, Any]],
        WithJsonSchema({"type": "array", "items": _INCLUDE_SCHEMA}),
    ] = Field(default_factory=list, description="Extra combinations, one job each, or {file: rows.csv} for many.")
    sample: Sample | SkipJsonSchema[None] = None
    limits: Limits = Field(default_factory=Limits)
    cleanup: Cleanup = Field(default_factory=Cleanup)
    output: Output = Field(default_factory=Output)
    pricing: Pricing = Field(default_factory=Pricing)
    budget: Budget = Field(default_factory=Budget)


_MODELS: dict[Loc, type[BaseModel]] = {
    (): ManifestSpec,
    ("params",): Params,
    ("limits",): Limits,
    ("cleanup",): Cleanup,
    ("output",): Output,
    ("sample",): Sample,
    ("pricing",): Pricing,
    ("budget",): Budget,
}
FIELD_TYPES: dict[str, TypeAdapter[Any]] = {
    "model": TypeAdapter(ModelId),
    "prompt": TypeAdapter(PromptText),
    "negative_prompt": TypeAdapter(NegativeText),
    "seed": TypeAdapter(Seed),
    "steps": TypeAdapter(Steps),
    "width": TypeAdapter(Side),
    "height": TypeAdapter(Side),
    "number_of_images": TypeAdapter(ImageCount),
    "prompt_strength": TypeAdapter(Annotated[float, Field(ge=0, le=30, strict=True)]),
    "version": TypeAdapter(LegacyVersion),
    "enhance_prompt": TypeAdapter(StrictBool),
    "restore_faces": TypeAdapter(StrictBool),
    "upscale_by": TypeAdapter(Upscale, config=ConfigDict(strict=True)),
    "sampler": TypeAdapter(Sampler, config=ConfigDict(strict=True)),
}


def error_hint(kind: str, loc: Loc, ctx: Mapping[str, Any]) -> str | None:
    """Return the hint the format knows for a pydantic error: a did-you-mean, where a key belongs, what to write."""
    if kind == "extra_forbidden":
        return unknown_key_hint(loc)
    if kind == "string_pattern_mismatch":
        return PATTERN_HINTS.get(str(ctx.get("pattern")))
    if loc == ("version",):
        return "add `version: 1` at the top" if kind == "missing" else "this leapbatch reads manifest version 1"
    if loc == ("name",) and kind == "missing":
        return "add `name: my-dataset`: it names the output folder"
    return None


def unknown_key_hint(loc: Loc) -> str | None:
    """Return the hint for an unknown key at `loc`: where that key belongs, or a did-you-mean."""
    model = _MODELS.get(loc[:-1])
    if model is None:
        return None
    key = str(loc[-1])
    if loc[:-1] == () and key in Params.model_fields:
        return f"`{key}` belongs under `params:`"
    if loc[:-1] == ("params",) and key in ManifestSpec.model_fields:
        return f"`{key}` belongs at the top level"
    known = list(model.model_fields)
    return wording.did_you_mean(key, known) or "known keys: " + ", ".join(known)


@dataclass(frozen=True, slots=True)
class Axis:
    """One matrix axis: scalar values set the name `label`; mapping values set each of their keys."""

    label: str
    values: Sequence[Any]  # a list of scalars, a list of mappings, or a range
    mapping: bool
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        """Return how many values the axis has, counted (`len()` of a range fails past 2**63 - 1 values)."""
        if isinstance(self.values, range):
            return max(0, -(-(self.values.stop - self.values.start) // self.values.step))
        return len(self.values)


@dataclass(frozen=True, eq=False, slots=True)
class Manifest:
    """A manifest that passed every check: what `expand` and the runner need, and where each part came from."""

    spec: ManifestSpec
    axes: tuple[Axis, ...]
    prompt: Template | None
    negative_prompt: Template | None
    caption: Template | None
    templates: Mapping[str, Template]  # every prompt / negative_prompt value set by an axis or include, parsed
    variables: Mapping[str, Scalar]
    excludes: tuple[Mapping[str, frozenset[Scalar]], ...]
    includes: tuple[Mapping[str, Scalar], ...]
    source_sha256: str
    source_path: Path | None = None
    locator: Locator = field(default_factory=lambda: Locator("<manifest>"))

    @property
    def name(self) -> str:
        """Return the dataset name."""
        return self.spec.name

    @property
    def output_dir(self) -> Path:
        """Return the output folder: `output.dir`, or `outputs/<name>`."""
        return Path(self.spec.output.dir) if self.spec.output.dir else Path("outputs") / self.spec.name

    @property
    def limits(self) -> Limits:
        """Return the rate and concurrency limits of a run."""
        return self.spec.limits

    @property
    def cleanup(self) -> Cleanup:
        """Return what to do with remote jobs after download."""
        return self.spec.cleanup

    @property
    def price(self) -> Price:
        """Return the manifest's price (`pricing:`): a preset, a figure per image or per GPU second; payg if unset."""
        pricing = self.spec.pricing
        quota = pricing.included_images_left
        if pricing.per_image is not None:
            return Price(per_image=_decimal(pricing.per_image), currency=pricing.currency, included_images=quota)
        if pricing.per_gpu_second is not None:
            return Price(per_gpu_second=_decimal(pricing.per_gpu_second), currency=pricing.currency)
        return Price.of_preset(pricing.preset or DEFAULT_PRESET, included_images=quota)

    @property
    def budget(self) -> Budget:
        """Return the budget caps and the consent threshold."""
        return self.spec.budget

    @property
    def uses_matrix(self) -> bool:
        """Return whether the matrix yields jobs (it does unless it is empty and there are include entries)."""
        return bool(self.axes) or not self.includes

    @property
    def combinations(self) -> int:
        """Return how many combinations the matrix yields before exclude (the product of the axis sizes)."""
        if not self.uses_matrix:
            return 0
        total = 1
        for axis in self.axes:
            total *= axis.size
        return total

    def problem(self, loc: Loc, message: str, hint: str | None = None) -> Problem:
        """Return a Problem located at the manifest's node for `loc`."""
        return self.locator.problem(loc, message, hint)


def _decimal(amount: float) -> Decimal:
    """Return a YAML number as the Decimal it was written as (0.0175 stays 0.0175)."""
    return Decimal(repr(amount))


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the manifest format, for editors (`leapbatch schema`)."""
    schema = ManifestSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
