"""Seeded, exact splits of an export: `train=0.9,test=0.1`, optionally stratified by a variable.

A split is made by job, never by image, so a job's images never land on both sides. Jobs are ranked by
sha256 of `"<seed>:<key>"`; within each stratum (every job, or the jobs sharing one value of `--stratify`'s
variable) the lowest ranks go to the first split, the next to the second, and so on, with counts by largest
remainder (so 10 jobs at 0.9/0.1 give exactly 9 and 1). The same jobs, fractions and seed always give the same
split; each split keeps the jobs in dataset order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Sequence
from fractions import Fraction
from typing import TypeVar

T = TypeVar("T")
DEFAULT_SPLIT = (("train", Fraction(1)),)
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}\Z")


def parse_split(text: str) -> tuple[tuple[str, Fraction], ...]:
    """Return the splits `train=0.9,test=0.1` names, or raise ValueError saying what is wrong with it."""
    parts: list[tuple[str, Fraction]] = []
    for item in text.split(","):
        name, equals, share = item.strip().partition("=")
        if not equals or not _NAME.match(name):
            raise ValueError(f"{item.strip()!r}: expected NAME=FRACTION, e.g. train=0.9 (names: lowercase letters)")
        try:
            fraction = Fraction(share.strip())
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{item.strip()!r}: {share.strip()!r} is not a number") from None
        if not 0 < fraction <= 1:
            raise ValueError(f"{item.strip()!r}: a share is more than 0 and at most 1")
        if name in (seen for seen, _ in parts):
            raise ValueError(f"{name!r} is named twice")
        parts.append((name, fraction))
    total = sum(fraction for _, fraction in parts)
    if total != 1:
        raise ValueError(f"the shares add up to {float(total):g}, not 1")
    return tuple(parts)


def counts(total: int, parts: Sequence[tuple[str, Fraction]]) -> list[int]:
    """Return how many of `total` items each part gets: the exact shares rounded by largest remainder."""
    exact = [total * fraction for _, fraction in parts]
    out = [int(share) for share in exact]
    order = sorted(range(len(parts)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def rank(seed: int, key: str) -> bytes:
    """Return the split rank of a job key: lower ranks go to the first split."""
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def assign(
    items: Sequence[T],
    key: Callable[[T], str],
    parts: Sequence[tuple[str, Fraction]],
    seed: int,
    stratum: Callable[[T], Hashable] | None = None,
) -> dict[str, list[T]]:
    """Return the items of each split, in their given order (see the module docstring)."""
    strata: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        strata.setdefault(None if stratum is None else stratum(item), []).append(i)
    chosen = [0] * len(items)
    for members in strata.values():
        ranked = sorted(members, key=lambda i: rank(seed, key(items[i])))
        start = 0
        for part, count in enumerate(counts(len(ranked), parts)):
            for i in ranked[start : start + count]:
                chosen[i] = part
            start += count
    out: dict[str, list[T]] = {name: [] for name, _ in parts}
    for i, item in enumerate(items):
        out[parts[chosen[i]][0]].append(item)
    return out
