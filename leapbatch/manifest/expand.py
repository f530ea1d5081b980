"""Expansion: a checked Manifest -> the jobs to run, in a stable order, with the counts `plan` shows.

Pure and deterministic. The same manifest always gives the same jobs, with the same keys, in the same order: the
matrix's combinations (axes in file order, the last varying fastest), then the include entries. A job's key depends
only on its model and request (`leapbatch.jobs.job_key`), so an edit changes only the jobs it touches, and reordering
axes or the keys of a mapping changes no key. The product is iterated lazily; only the keys seen and the jobs kept
are held in memory (with `sample`, only the `count` best picks so far).

For each combination, the names it sets and then `vars` fill the templates; each request field comes from the
combination, else from `params` (or the top-level `model`, `prompt`, `negative_prompt`), else from the defaults of
`params`. A job with no seed anywhere gets `int(k[:8], 16) % 2**31` as its seed, where `k` is the job key of the
same request without a seed: stable, spread out, and never Leap's constant default seed. The `caption` template,
if any, is rendered from the same values into each job's caption (not sent, so no part of its key). Combinations whose
requests are equal collapse into the first. `sample` ranks the matrix jobs by sha256 of `"<seed>:<key>"` and keeps
the `count` lowest, in matrix order, so a larger count keeps every earlier pick; include entries are always kept.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import product
from typing import Any

from leapbatch.errors import ManifestError, Problem
from leapbatch.jobs import Job, Scalar, Shard, job_key
from leapbatch.manifest import MAX_TEXT, Manifest
from leapbatch.manifest.safe_yaml import Loc
from leapbatch.wire import CreateInferenceDto

SEED_MODULUS = 2**31
_BODY_FIELDS = ("steps", "width", "height", "number_of_images", "prompt_strength")
_LEGACY_FIELDS = ("version", "enhance_prompt", "restore_faces", "upscale_by", "sampler")
_TEMPLATE_FIELDS = ("prompt", "negative_prompt")
_OPTIONAL_FIELDS = frozenset(("seed", *_LEGACY_FIELDS))
_MAX_PROBLEMS = 10
_WIRE_NAMES = {name: field.alias or name for name, field in CreateInferenceDto.model_fields.items()}
# Canonical JSON as in leapbatch.jobs.canonical_json, for the flat bodies built here (a test checks they agree).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ModelTotals:
    """How many jobs and images one model gets."""

    jobs: int
    images: int


@dataclass(frozen=True, slots=True)
class Expansion:
    """The jobs of a manifest, in order, and how they were counted.

    `len(jobs) == combinations - excluded - duplicates - sampled_out + included`.
    """

    jobs: list[Job]
    combinations: int  # the product of the axis sizes (0 when only include entries give jobs)
    excluded: int  # combinations dropped by `exclude`
    included: int  # include entries
    duplicates: int  # combinations and entries whose request equals an earlier job's
    sampled_out: int  # matrix jobs left out by `sample`
    images: int
    models: dict[str, ModelTotals]
    axis_values: dict[str, dict[str, int]]  # for each name an axis sets: value (as text) -> jobs
    shard: Shard | None = None  # with a shard, `jobs` and the tallies are that shard's only (`in_shard`)
    all_jobs: int = 0  # the manifest's jobs before sharding (`len(jobs)` without a shard)


def value_label(value: Scalar) -> str:
    """Return how a variable's value is shown: text as is, `true`/`false`, numbers as written."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def request_key(model_id: str, body: Mapping[str, Scalar]) -> str:
    """Return `jobs.job_key` of a request from its flat wire body (None values left out, integral floats as ints).

    The same hash, computed without building and dumping a model: expansion makes one or two keys per job.
    """
    return hashlib.sha256(_CANONICAL.encode({"model": model_id, "request": body}).encode("utf-8")).hexdigest()


def derived_seed_of(model_id: str, body: Mapping[str, Scalar]) -> int:
    """Return the seed of a job that sets none: from the key of its request body without a seed."""
    unseeded = {name: value for name, value in body.items() if name != "seed"}
    return int(request_key(model_id, unseeded)[:8], 16) % SEED_MODULUS


def derived_seed(model_id: str, request: CreateInferenceDto) -> int:
    """Return the seed a request gets when it sets none (its own seed, if any, is ignored)."""
    unseeded = request.model_copy(update={"seed": None}) if request.seed is not None else request
    return int(job_key(model_id, unseeded)[:8], 16) % SEED_MODULUS


class _Resolver:
    """Turn one combination (the names it sets) into a Job, collecting problems with rendered prompts."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.problems: list[Problem] = []
        params = manifest.spec.params
        # Request fields from params, set once; a combination's own values replace them.
        self.defaults: dict[str, Any] = {
            name: value
            for name in (*_BODY_FIELDS, *_LEGACY_FIELDS, "seed")
            if (value := getattr(params, name)) is not None
        }
        self.templates = (("prompt", manifest.prompt), ("negative_prompt", manifest.negative_prompt))

    def job(self, assign: Mapping[str, Scalar], loc: Loc) -> Job | None:
        """Return the job of a combination, or None (and a problem) if a prompt renders badly."""
        manifest = self.manifest
        values = {**manifest.variables, **assign}
        fields: dict[str, Any] = {}
        variables = {k: v for k, v in assign.items() if k not in _TEMPLATE_FIELDS}
        for name, top in self.templates:
            template = manifest.templates[str(assign[name])] if name in assign else top
            if template is None:
                continue
            fields[name] = text = template.render(values)
            if len(text) > MAX_TEXT or (name == "prompt" and not text.strip()):
                self.rendered(name, text, assign, loc)
                return None
            for used in template.names:
                variables.setdefault(used, values[used])
        fields.update(self.defaults)
        for name, value in assign.items():
            if name in self.defaults or name in _OPTIONAL_FIELDS:
                fields[name] = value
        caption = manifest.caption.render(values) if manifest.caption is not None else None
        strength = fields["prompt_strength"]
        if isinstance(strength, float) and strength.is_integer():
            fields["prompt_strength"] = int(strength)  # canonical JSON writes 7.0 as 7: send what is hashed
        model = str(assign.get("model", manifest.spec.model))
        body = {_WIRE_NAMES[name]: value for name, value in fields.items()}
        if "seed" not in fields:
            body["seed"] = fields["seed"] = derived_seed_of(model, body)
        return Job(request_key(model, body), model, CreateInferenceDto(**fields), variables, caption)

    def rendered(self, name: str, text: str, assign: Mapping[str, Scalar], loc: Loc) -> None:
        """Report a prompt that rendered empty or too long, naming the values that made it."""
        where = ", ".join(f"{k}={value_label(v)}" for k, v in assign.items() if k not in _TEMPLATE_FIELDS)
        what = "renders to empty text" if not text.strip() else f"renders to {len(text):,} characters"
        limit = "" if not text.strip() else f", over the {MAX_TEXT:,}-character limit"
        at, what = (loc, f"{name} {what}") if loc[0] == "include" else ((name,), what)
        self.problems.append(self.manifest.problem(at, f"{what}{limit}" + (f" (for {where})" if where else "")))
        if len(self.problems) >= _MAX_PROBLEMS:
            raise ManifestError(self.problems)


def _combinations(manifest: Manifest) -> Iterator[dict[str, Scalar]]:
    if not manifest.uses_matrix:
        return
    axes = manifest.axes
    for values in product(*(axis.values for axis in axes)):
        assign: dict[str, Scalar] = {}
        for axis, value in zip(axes, values, strict=True):
            if axis.mapping:
                assign.update(value)
            else:
                assign[axis.label] = value
        yield assign


def _excluded(assign: Mapping[str, Scalar], excludes: tuple[Mapping[str, frozenset[Scalar]], ...]) -> bool:
    return any(all(name in assign and assign[name] in values for name, values in entry.items()) for entry in excludes)


def sample_rank(seed: int, key: str) -> int:
    """Return the sampling rank of a job key (sha256 of `"<seed>:<key>"` as a number): lower ranks are picked first."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest(), "big")


def expand(manifest: Manifest) -> Expansion:  # noqa: C901 -- the counts the report needs are kept in one loop, read top to bottom
    """Return the jobs of a manifest in stable order; raise ManifestError if a prompt renders badly or none is left."""
    resolver = _Resolver(manifest)
    sample = manifest.spec.sample
    seen: set[str] = set()
    jobs: list[Job] = []
    picks: list[tuple[int, int, Job]] = []  # with `sample`: a heap of the `count` lowest ranks, as (-rank, order, job)
    combinations = excluded = duplicates = unique = 0
    for assign in _combinations(manifest):
        combinations += 1
        if _excluded(assign, manifest.excludes):
            excluded += 1
            continue
        job = resolver.job(assign, ("matrix",))
        if job is None:
            continue
        if job.key in seen:
            duplicates += 1
            continue
        seen.add(job.key)
        unique += 1
        if sample is None:
            jobs.append(job)
        elif len(picks) < sample.count:
            heapq.heappush(picks, (-sample_rank(sample.seed, job.key), unique, job))
        else:
            heapq.heappushpop(picks, (-sample_rank(sample.seed, job.key), unique, job))
    sampled_out = 0
    if sample is not None:
        jobs = [job for _, _, job in sorted(picks, key=lambda pick: pick[1])]
        sampled_out = unique - len(jobs)
        seen = {job.key for job in jobs}  # an include entry equal to a sampled-out job is still wanted
    for i, entry in enumerate(manifest.includes):
        job = resolver.job(entry, ("include", i))
        if job is None:
            continue
        if job.key in seen:
            duplicates += 1
            continue
        seen.add(job.key)
        jobs.append(job)
    if resolver.problems:
        raise ManifestError(resolver.problems)
    if not jobs:
        said = f"drops all {combinations:,} combinations, so the manifest has no jobs"
        raise ManifestError([manifest.problem(("exclude",), said, "loosen the exclude entries")])
    return _counted(manifest, jobs, combinations, excluded, duplicates, sampled_out)


def _counted(
    manifest: Manifest, jobs: list[Job], combinations: int, excluded: int, duplicates: int, sampled_out: int
) -> Expansion:
    axis_names = [name for axis in manifest.axes for name in axis.names if name not in _TEMPLATE_FIELDS]
    images, models, axis_values = _tally(jobs, axis_names)
    return Expansion(
        jobs=jobs,
        combinations=combinations,
        excluded=excluded,
        included=len(manifest.includes),
        duplicates=duplicates,
        sampled_out=sampled_out,
        images=images,
        models=models,
        axis_values=axis_values,
        all_jobs=len(jobs),
    )


def _tally(jobs: list[Job], axis_names: list[str]) -> tuple[int, dict[str, ModelTotals], dict[str, dict[str, int]]]:
    """Return the images, the totals per model and the jobs per axis value of `jobs`."""
    models: dict[str, list[int]] = {}
    counters: dict[str, Counter[str]] = {name: Counter() for name in axis_names}
    images = 0
    for job in jobs:
        count = job.image_count
        images += count
        totals = models.setdefault(job.model_id, [0, 0])
        totals[0] += 1
        totals[1] += count
        for name, counter in counters.items():
            if name in job.variables:
                counter[value_label(job.variables[name])] += 1
    per_model = {model: ModelTotals(j, i) for model, (j, i) in models.items()}
    return images, per_model, {name: dict(counter) for name, counter in counters.items()}


def in_shard(expansion: Expansion, shard: Shard | None) -> Expansion:
    """Return the part of `expansion` in `shard` (all of it for None): its jobs, in order, and their tallies.

    The manifest-wide counts (combinations, excluded, duplicates, sampled out) stay the whole manifest's.
    """
    if shard is None:
        return expansion
    jobs = [job for job in expansion.jobs if shard.holds(job.key)]
    images, models, axis_values = _tally(jobs, list(expansion.axis_values))
    return replace(expansion, jobs=jobs, images=images, models=models, axis_values=axis_values, shard=shard)
