"""Splits: exact shares by largest remainder, by job, seeded, stable, stratified on request."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest

from leapbatch.export.split import assign, counts, parse_split

KEYS = [f"{i:064x}" for i in range(100)]


def test_a_split_spec_parses_to_exact_fractions() -> None:
    """`train=0.9,test=0.1` is two named exact shares."""
    assert (("train", Fraction(9, 10)), ("test", Fraction(1, 10))) == parse_split("train=0.9,test=0.1")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("train=0.9", "add up to 0.9, not 1"),
        ("train=0.5,train=0.5", "'train' is named twice"),
        ("Train=1", "expected NAME=FRACTION"),
        ("train=x", "'x' is not a number"),
        ("train=0,test=1", "more than 0"),
        ("train", "expected NAME=FRACTION"),
    ],
)
def test_a_bad_split_spec_says_what_is_wrong(text: str, said: str) -> None:
    """Each malformed spec is refused with a sentence naming its fault."""
    with pytest.raises(ValueError, match=said):
        parse_split(text)


def test_counts_are_exact_and_add_up() -> None:
    """10 jobs at 0.9/0.1 give 9 and 1; 7 give 6 and 1; thirds of 3 give one each."""
    shares = parse_split("train=0.9,test=0.1")
    assert ([9, 1], [6, 1], [1, 1, 1]) == (
        counts(10, shares),
        counts(7, shares),
        counts(3, parse_split("a=1/3,b=1/3,c=1/3")),
    )


def test_assign_is_deterministic_and_keeps_dataset_order() -> None:
    """The same items, shares and seed give the same split, each part in the items' order."""
    shares = parse_split("train=0.8,test=0.2")
    first = assign(KEYS, str, shares, seed=3)
    assert first == assign(list(KEYS), str, shares, seed=3)
    assert [20, 80] == sorted(len(part) for part in first.values())
    assert all(part == sorted(part, key=KEYS.index) for part in first.values())


def test_another_seed_gives_another_split() -> None:
    """The seed changes which items are held out."""
    shares = parse_split("train=0.8,test=0.2")
    assert assign(KEYS, str, shares, seed=0)["test"] != assign(KEYS, str, shares, seed=1)["test"]


def test_stratified_split_gives_each_stratum_its_share() -> None:
    """Stratified by a value, each stratum is split in the same shares (30 a's and 70 b's: 3 and 7 held out)."""
    stratum = {key: "a" if i < 30 else "b" for i, key in enumerate(KEYS)}
    held = assign(KEYS, str, parse_split("train=0.9,test=0.1"), seed=0, stratum=stratum.__getitem__)["test"]
    assert {"a": 3, "b": 7} == dict(Counter(stratum[key] for key in held))
