"""Planning the sweep: one group per target, batches bounded by count and payload size."""

import json

import pytest

from chalicelib.sweep import (
    ASYNC_PAYLOAD_LIMIT,
    group_by_target,
    json_size,
    pack,
    plan_batches,
    split_group,
)


def subscription(subscriber, target, tolerance="30"):
    return {"subscriber": subscriber, "target": target, "tolerance": tolerance}


def test_group_by_target_probes_each_target_once_and_keeps_each_tolerance():
    groups = group_by_target(
        [
            subscription("b", "example.com:443", "auto"),
            subscription("a", "example.com:443", "10"),
            subscription("a", "other.test:8443"),
        ]
    )
    assert groups == [
        {
            "target": "example.com:443",
            "subscriptions": [
                # a watches two targets: the mailer's digest waits for both results.
                {"subscriber": "a", "tolerance": "10", "count": 2},
                {"subscriber": "b", "tolerance": "auto"},
            ],
        },
        {
            "target": "other.test:8443",
            "subscriptions": [{"subscriber": "a", "tolerance": "30", "count": 2}],
        },
    ]


def test_group_by_target_counts_a_subscriber_once_per_target():
    groups = group_by_target([subscription("a", "x:443"), subscription("a", "x:443", "7")])
    assert groups == [{"target": "x:443", "subscriptions": [{"subscriber": "a", "tolerance": "7"}]}]


def test_group_by_target_of_nothing_is_nothing():
    assert group_by_target([]) == []


@pytest.mark.parametrize(
    ("count", "max_count", "sizes"),
    [(0, 3, []), (1, 3, [1]), (3, 3, [3]), (7, 3, [3, 3, 1]), (5, 1, [1, 1, 1, 1, 1])],
)
def test_pack_by_count(count, max_count, sizes):
    batches = pack(range(count), max_count)
    assert [len(batch) for batch in batches] == sizes
    assert [item for batch in batches for item in batch] == list(range(count))


def test_pack_by_size_keeps_every_batch_under_the_limit():
    items = [{"blob": "x" * 1000, "n": n} for n in range(100)]
    batches = pack(items, max_count=1000, max_bytes=10_000)
    assert len(batches) > 1
    assert all(len(json.dumps(batch)) <= 10_000 for batch in batches)
    assert [item for batch in batches for item in batch] == items


def test_pack_gives_an_oversized_item_a_batch_of_its_own():
    items = [{"blob": "x" * 50}, {"blob": "y" * 500}, {"blob": "z"}]
    assert pack(items, max_count=10, max_bytes=100) == [[items[0]], [items[1]], [items[2]]]


def test_pack_refuses_an_empty_batch_size():
    with pytest.raises(ValueError):
        pack([1], max_count=0)


def test_split_group_splits_a_very_popular_target():
    group = {
        "target": "popular.test:443",
        "subscriptions": [{"subscriber": f"{n:032x}", "tolerance": "30"} for n in range(500)],
    }
    pieces = split_group(group, max_bytes=5_000)
    assert len(pieces) > 1
    assert all(piece["target"] == "popular.test:443" for piece in pieces)
    assert all(json_size(piece) <= 5_000 for piece in pieces)
    assert [s for piece in pieces for s in piece["subscriptions"]] == group["subscriptions"]


def test_plan_batches_fits_the_async_payload_limit_at_scale():
    scanned = [
        subscription(f"{n:032x}", f"host{n % 3000}.example.com:443", "auto") for n in range(20_000)
    ]
    scanned += [subscription(f"{n:032x}", "everyone.example.com:443") for n in range(20_000)]
    batches = plan_batches(scanned, targets_per_batch=250)
    for batch in batches:
        payload = {"action": "check", "day": "2026-11-27", "targets": batch}
        assert len(json.dumps(payload).encode()) < ASYNC_PAYLOAD_LIMIT
        assert len(batch) <= 250
    watched = [
        (group["target"], s["subscriber"])
        for batch in batches
        for group in batch
        for s in group["subscriptions"]
    ]
    assert len(watched) == len(set(watched)) == 40_000
    # The 3,000 ordinary targets are each in one group; only the huge one is split.
    targets = [group["target"] for batch in batches for group in batch]
    assert len(set(targets)) == 3001
    assert targets.count("host1.example.com:443") == 1
    assert targets.count("everyone.example.com:443") > 1
