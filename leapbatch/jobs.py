"""Pure value types for jobs: the job itself, its content-derived key, and its request fingerprint.

A job's identity is the request it sends. The **key** is `sha256` over the canonical JSON (sorted keys, compact,
UTF-8, integral floats written as ints) of `{"model": <model id>, "request": <the body as sent, minus webhookUrl>}`,
shown as 64 lowercase hex digits. It does not depend on where the job came from (manifest name, file, axis order).

The **fingerprint** is what a job looks like from the server's side: the eight fields Leap echoes back in an
InferenceEntity (prompt, negativePrompt, seed, steps, width, height, numberOfImages, promptStrength), with the spec's
defaults filled in. It is how a create whose outcome is unknown is recognised in a listing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leapbatch.wire import DEFAULT_NUMBER_OF_IMAGES, SPEC_DEFAULTS, CreateInferenceDto, InferenceEntity

FINGERPRINT_FIELDS = (
    "prompt",
    "negativePrompt",
    "seed",
    "steps",
    "width",
    "height",
    "numberOfImages",
    "promptStrength",
)

Scalar = str | int | float | bool


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of `value`: sorted keys, compact, unicode kept, `7.0` written as `7`."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """Return the sha256 hex digest of `value`'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def job_key(model_id: str, request: CreateInferenceDto) -> str:
    """Return the job key: a hash of the model id and the request as sent, without its webhook."""
    body = request.to_wire()
    body.pop("webhookUrl", None)
    return content_hash({"model": model_id, "request": body})


def _fingerprint_of(values: Mapping[str, Any]) -> str:
    picked = {name: values.get(name) for name in FINGERPRINT_FIELDS}
    for name, default in SPEC_DEFAULTS.items():
        if picked.get(name) is None:
            picked[name] = default
    return content_hash(picked)


def request_fingerprint(request: CreateInferenceDto) -> str:
    """Return the fingerprint the server will echo for this request."""
    return _fingerprint_of(request.to_wire())


def entity_fingerprint(entity: InferenceEntity) -> str:
    """Return the fingerprint of a job as listed by the server."""
    return _fingerprint_of(entity.model_dump(by_alias=True, mode="json"))


@dataclass(frozen=True, slots=True)
class Job:
    """One create call to make: its key, model, request body, the template values that produced it, and its caption.

    The caption is the dataset's text for the job's images (the manifest's `caption:` template, rendered); it is
    not sent, so it is no part of the key. None means the prompt.
    """

    key: str
    model_id: str
    request: CreateInferenceDto
    variables: Mapping[str, Scalar] = field(default_factory=dict)
    caption: str | None = None

    @classmethod
    def build(cls, model_id: str, request: CreateInferenceDto, variables: Mapping[str, Scalar] | None = None) -> Job:
        """Return a job whose key is derived from its model and request."""
        return cls(job_key(model_id, request), model_id, request, dict(variables or {}))

    @property
    def text(self) -> str:
        """Return the caption of the job's images: its caption, else its prompt."""
        return self.request.prompt if self.caption is None else self.caption

    @property
    def image_count(self) -> int:
        """Return how many images this job produces."""
        return self.request.number_of_images or DEFAULT_NUMBER_OF_IMAGES

    @property
    def fingerprint(self) -> str:
        """Return the request fingerprint (see the module docstring)."""
        return request_fingerprint(self.request)


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (counted from 1): the jobs whose key, read as a number, is `index - 1` modulo `count`.

    Keys are sha256 digests, so shards are balanced, and a job's shard depends on its key alone: an edited
    manifest keeps every job it still has in the shard it was in.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count} does not exist: shards count from 1 to {self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Return the shard `I/N` names, or raise ValueError saying what is wrong with it."""
        index, slash, count = text.strip().partition("/")
        if not slash or not index.isdigit() or not count.isdigit() or int(count) < 1:
            raise ValueError("expected I/N, shard I of N, counted from 1 (1/4 to 4/4)")
        return cls(int(index), int(count))

    def holds(self, key: str) -> bool:
        """Return whether the job with this key belongs to this shard."""
        return int(key[:16], 16) % self.count == self.index - 1

    def share(self, amount: int) -> int:
        """Return this shard's part of a whole `amount` split over every shard: the parts add up to `amount`."""
        part, left = divmod(amount, self.count)
        return part + (1 if self.index <= left else 0)

    @property
    def suffix(self) -> str:
        """Return what a shard's default output folder adds to the manifest's: `-shard-2-of-4`."""
        return f"-shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
