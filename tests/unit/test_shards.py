"""Shards (`leapbatch.jobs.Shard`, `manifest.expand.in_shard`, `cli.shards`): a manifest's jobs split by key into N
balanced, disjoint parts that an edit never moves, and each shard's part of the limits and caps adds up to the whole.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest

from leapbatch.cli.shards import count_share, rate_share, threshold_share
from leapbatch.jobs import Shard
from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import Expansion, expand, in_shard
from leapbatch.run.budget import Caps

KEYS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]


def expansion(**data: Any) -> Expansion:
    """Return the expansion of a manifest given as keyword data."""
    return expand(parse_manifest(json.dumps({"version": 1, "name": "t", "model": "m1"} | data)))


@pytest.mark.parametrize(
    ("text", "index", "count"), [("1/4", 1, 4), ("4/4", 4, 4), ("1/1", 1, 1), (" 12/100 ", 12, 100)]
)
def test_a_shard_is_written_i_of_n_counted_from_one(text: str, index: int, count: int) -> None:
    """`I/N` is shard I of N; its text is `I/N` again."""
    shard = Shard.parse(text)
    assert (index, count) == (shard.index, shard.count)
    assert f"{index}/{count}" == str(shard)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("0/4", "shard 0/4 does not exist: shards count from 1 to 4"),
        ("5/4", "shard 5/4 does not exist: shards count from 1 to 4"),
        ("1/0", "expected I/N"),
        ("2", "expected I/N"),
        ("a/b", "expected I/N"),
        ("-1/4", "expected I/N"),
        ("", "expected I/N"),
    ],
)
def test_a_shard_that_does_not_exist_is_refused_in_words(text: str, said: str) -> None:
    """A shard outside 1..N, or text that is no `I/N`, is a ValueError saying so."""
    with pytest.raises(ValueError, match="^" + said.replace("/", "/")):
        Shard.parse(text)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_every_key_is_in_exactly_one_shard(count: int) -> None:
    """The shards of N partition the keys: each key is held by one shard and one only."""
    shards = [Shard(i, count) for i in range(1, count + 1)]
    assert all(sum(shard.holds(key) for shard in shards) == 1 for key in KEYS)


def test_shards_are_balanced() -> None:
    """Keys are sha256 digests, so each of 4 shards holds close to a quarter of 4,000 keys (within 10% of it)."""
    sizes = [sum(Shard(i, 4).holds(key) for key in KEYS) for i in range(1, 5)]
    assert all(900 <= size <= 1100 for size in sizes), sizes


def test_in_shard_keeps_the_shards_jobs_in_order_with_their_tallies() -> None:
    """`in_shard` keeps the jobs whose key the shard holds, in manifest order, and counts images, models and axis
    values over them; the whole manifest's job count stays known."""
    whole = expansion(prompt="{a} {b}", matrix={"a": list("pqrs"), "b": list("wxyz")}, params={"number_of_images": 2})
    shard = Shard(2, 3)
    part = in_shard(whole, shard)

    assert [job for job in whole.jobs if shard.holds(job.key)] == part.jobs
    assert 0 < len(part.jobs) < len(whole.jobs)
    assert 2 * len(part.jobs) == part.images
    assert {"m1": (len(part.jobs), part.images)} == {m: (t.jobs, t.images) for m, t in part.models.items()}
    assert sum(part.axis_values["a"].values()) == len(part.jobs)
    assert (shard, len(whole.jobs)) == (part.shard, part.all_jobs)
    assert whole is in_shard(whole, None)


def test_the_shards_of_a_manifest_add_up_to_it() -> None:
    """Together the shards hold every job of the manifest once."""
    whole = expansion(prompt="{a}", matrix={"a": {"range": [1, 50]}})
    parts = [in_shard(whole, Shard(i, 3)).jobs for i in range(1, 4)]
    assert sorted(job.key for job in whole.jobs) == sorted(job.key for part in parts for job in part)


def test_an_edited_manifest_keeps_every_job_it_still_has_in_its_shard() -> None:
    """Adding values to an axis (and removing others) moves no job that both versions make to another shard."""
    before = expansion(prompt="{a} {b}", matrix={"a": list("pqr"), "b": {"range": [1, 20]}})
    after = expansion(prompt="{a} {b}", matrix={"a": list("qrst"), "b": {"range": [1, 30]}})
    for i in range(1, 5):
        shard = Shard(i, 4)
        old = {job.key for job in in_shard(before, shard).jobs}
        new = {job.key for job in in_shard(after, shard).jobs}
        kept = {job.key for job in before.jobs} & {job.key for job in after.jobs}
        assert old & kept == new & kept


@pytest.mark.parametrize("count", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("amount", [0, 1, 2, 5, 10, 16, 17, 1000])
def test_a_whole_amount_splits_into_parts_that_add_up_to_it(count: int, amount: int) -> None:
    """`share` splits a count over N shards in parts that differ by at most one and add up to it."""
    parts = [Shard(i, count).share(amount) for i in range(1, count + 1)]
    assert amount == sum(parts)
    assert max(parts) - min(parts) <= 1


def test_the_caps_of_the_shards_add_up_to_the_budget() -> None:
    """`budget.max_images: 10` over 4 shards is 3, 3, 2, 2; `max_usd: 1.00` over 3 is 0.3334, 0.3333, 0.3333."""
    caps = Caps(Decimal("1.00"), 10)
    shares = [caps.share(Shard(i, 4)) for i in range(1, 5)]
    assert [3, 3, 2, 2] == [share.max_images for share in shares]
    thirds = [caps.share(Shard(i, 3)).max_cost for i in range(1, 4)]
    assert [Decimal("0.3334"), Decimal("0.3333"), Decimal("0.3333")] == thirds
    assert caps is caps.share(None)
    assert Caps(None, None) == Caps().share(Shard(1, 2))


def test_the_limits_of_the_shards_add_up_to_the_manifests() -> None:
    """Requests per second, burst and jobs in flight split over the shards; a count never drops below one."""
    assert 2.5 == rate_share(10.0, Shard(1, 4))
    assert 16 == sum(count_share(16, Shard(i, 3)) for i in range(1, 4))
    assert [1, 1, 1] == [count_share(2, Shard(i, 3)) for i in range(1, 4)]
    assert (10.0, 16) == (rate_share(10.0, None), count_share(16, None))
    assert Decimal("2.5") == threshold_share(Decimal("10"), Shard(4, 4))
