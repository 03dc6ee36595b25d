"""The `Producer` library against a real server: batching, ids, sealing, bad items."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import pytest
from support import make_settings

import producer.producer as producer_module
from producer import Producer
from workqueue.errors import InputError, QueueSealedError, UsageError
from workqueue.queue import Queue
from workqueue.settings import Settings


def stored_items(queue: Queue) -> dict[str, str]:
    """Every item text the queue holds, by id, read straight from the server."""
    items: dict[str, str] = queue.connection.client.hgetall(queue.keys.items)
    return items


def test_put_many_streams_a_generator_in_batches_and_seals_on_clean_exit(
    redis_url: str, queue: Queue
) -> None:
    settings = make_settings(redis_url, batch_size=7)
    pulled = []

    def rows() -> Iterator[dict[str, int]]:
        for n in range(50):
            pulled.append(n)
            yield {"n": n}

    with Producer(queue.name, settings) as producer:
        assert producer.put_many(rows()) == 50
        # Whole batches left while the generator was read; only the tail waits.
        assert producer.accepted == 50
    assert producer.enqueued == 50 and producer.duplicates == 0
    stats = queue.stats()
    assert stats.pending == 50 and stats.sealed
    texts = stored_items(queue).values()
    assert sorted(json.loads(t)["n"] for t in texts) == list(range(50))
    assert all(t == json.dumps(json.loads(t), separators=(",", ":")) for t in texts)


def test_put_sends_a_batch_as_soon_as_it_is_full(redis_url: str, queue: Queue) -> None:
    producer = Producer(queue.name, make_settings(redis_url, batch_size=3))
    try:
        for n in range(4):
            producer.put({"n": n})
        # The first three left without flush(); the fourth waits in the buffer.
        deadline = time.monotonic() + 10
        while queue.stats().pending < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queue.stats().pending == 3
        producer.flush()
        assert queue.stats().pending == 4 and producer.enqueued == 4
    finally:
        producer.close()


def test_ids_seen_before_are_skipped_and_counted_on_rerun(settings: Settings, queue: Queue) -> None:
    first = Producer(queue.name, settings)
    first.put({"n": 1}, id="a")
    first.put({"n": 2}, id=2)
    first.flush()
    first.close()
    assert (first.enqueued, first.duplicates) == (2, 0)

    with Producer(queue.name, settings) as rerun:
        rerun.put_many([{"n": 1}, {"n": 2}, {"n": 3}], ids=["a", 2, "c"])
    assert (rerun.enqueued, rerun.duplicates) == (1, 2)
    assert set(stored_items(queue)) == {"a", "2", "c"}
    assert queue.stats().pending == 3


def test_put_many_takes_ids_from_a_function_and_skips_repeats_within_the_input(
    settings: Settings, queue: Queue
) -> None:
    rows = [{"key": "x", "v": 1}, {"key": "y", "v": 2}, {"key": "x", "v": 3}]
    with Producer(queue.name, settings) as producer:
        producer.put_many(iter(rows), ids=lambda row: row["key"])
    assert (producer.enqueued, producer.duplicates) == (2, 1)
    assert json.loads(stored_items(queue)["x"]) == {"key": "x", "v": 1}


def test_items_with_and_without_ids_can_be_mixed(settings: Settings, queue: Queue) -> None:
    with Producer(queue.name, settings) as producer:
        producer.put("first")
        producer.put("second", id="k")
        producer.put("third")
    items = stored_items(queue)
    assert len(items) == 3 and items["k"] == '"second"'
    generated = sorted(key for key in items if key.startswith("#"))
    assert len(generated) == 2
    assert {items[key] for key in generated} == {'"first"', '"third"'}


def test_exception_in_with_block_sends_accepted_items_but_does_not_seal(
    settings: Settings, queue: Queue
) -> None:
    with pytest.raises(ZeroDivisionError), Producer(queue.name, settings) as producer:
        producer.put({"n": 1}, id="one")
        producer.put({"n": 2}, id="two")
        _ = 1 / 0
    stats = queue.stats()
    assert stats.pending == 2 and not stats.sealed
    # A rerun adds the rest and seals.
    with Producer(queue.name, settings) as rerun:
        rerun.put_many([{"n": n} for n in (1, 2, 3)], ids=["one", "two", "three"])
    assert (rerun.enqueued, rerun.duplicates) == (1, 2)
    assert queue.stats().sealed


def test_a_bad_item_in_put_many_names_its_index_and_the_earlier_items_stay_accepted(
    settings: Settings, queue: Queue
) -> None:
    refused = pytest.raises(InputError, match=r"item at index 2 of put_many cannot be encoded")
    with refused, Producer(queue.name, settings) as producer:
        producer.put_many([{"n": 0}, {"n": 1}, {"n": {1, 2}}, {"n": 3}])
    stats = queue.stats()
    assert stats.pending == 2 and not stats.sealed


def test_nan_is_not_json_and_is_refused_naming_the_item(settings: Settings, queue: Queue) -> None:
    producer = Producer(queue.name, settings)
    try:
        with pytest.raises(InputError, match=r"item 'x': cannot be encoded as JSON: .*NaN"):
            producer.put({"v": math.nan}, id="x")
        with pytest.raises(InputError, match=r"item 0 of this producer cannot be encoded"):
            producer.put([math.inf])
        with pytest.raises(
            InputError, match=r"item 'y': cannot be encoded .*\(index 1 of put_many\)"
        ):
            producer.put_many([1, object()], ids=["ok", "y"])
        producer.flush()
    finally:
        producer.close()
    assert producer.enqueued == 1  # only "ok"


def test_an_item_above_the_size_limit_is_refused(redis_url: str, queue: Queue) -> None:
    producer = Producer(queue.name, make_settings(redis_url, max_item_bytes=32))
    try:
        producer.put("x" * 30)  # 32 bytes with its quotes: at the limit
        with pytest.raises(InputError, match=r"item 1 of this producer is 33 bytes as JSON"):
            producer.put("x" * 31)
        # Size is counted in UTF-8 bytes: 16 characters of two bytes each, plus quotes.
        with pytest.raises(InputError, match=r"item 'big': is 34 bytes as JSON, above the limit"):
            producer.put("é" * 16, id="big")
        with pytest.raises(InputError, match=r"item at index 0 of put_many is 40 bytes"):
            producer.put_many(["y" * 38])
        producer.flush()
    finally:
        producer.close()
    assert queue.stats().pending == 1


@pytest.mark.parametrize(
    ("bad_id", "problem"),
    [
        ("", "item id is empty"),
        ("#7", "kept for generated ids"),
        ("a\nb", "control character"),
        (True, "must be a string or an integer, not bool"),
        (1.5, "must be a string or an integer, not float"),
        ("x" * 257, "longer than 256 bytes"),
    ],
)
def test_invalid_caller_ids_are_refused(
    settings: Settings, queue: Queue, bad_id: object, problem: str
) -> None:
    producer = Producer(queue.name, settings)
    try:
        with pytest.raises(InputError, match=problem):
            producer.put({"n": 1}, id=bad_id)  # type: ignore[arg-type]
        with pytest.raises(InputError, match=rf"item at index 1 of put_many: .*{problem}"):
            producer.put_many([1, 2], ids=["fine", bad_id])
    finally:
        producer.close()


def test_put_many_refuses_ids_that_do_not_match_the_items_in_number(
    settings: Settings, queue: Queue
) -> None:
    producer = Producer(queue.name, settings)
    try:
        with pytest.raises(InputError, match="fewer ids than items"):
            producer.put_many([1, 2, 3], ids=["a", "b"])
        with pytest.raises(InputError, match="more ids than items"):
            producer.put_many([1], ids=["c", "d"])
    finally:
        producer.close()


def test_a_sealed_queue_refuses_new_items(settings: Settings, queue: Queue) -> None:
    with Producer(queue.name, settings) as producer:
        producer.put({"n": 1}, id="a")
    assert queue.stats().sealed
    late = Producer(queue.name, settings)
    try:
        late.put({"n": 2}, id="b")
        with pytest.raises(QueueSealedError, match="is sealed"):
            late.flush()
    finally:
        late.close()
    # Offering only ids the queue already has is no new work, and is allowed.
    again = Producer(queue.name, settings)
    again.put({"n": 1}, id="a")
    again.flush()
    again.close()
    assert (again.enqueued, again.duplicates) == (0, 1)


def test_producer_on_an_open_queue_shares_it_and_leaves_it_open(queue: Queue) -> None:
    with Producer(queue) as producer:
        producer.put({"n": 1})
    assert queue.stats().pending == 1  # the queue's connection still works
    with pytest.raises(UsageError, match="a Queue alone"):
        Producer(queue, queue.settings)


@pytest.mark.parametrize(
    "value",
    [
        {"n": 1, "s": "café", "l": [1.5, -0.0, 1e300, None, True], "nested": {"k": []}},
        "plain",
        'quote " and \\ and \n newline and \u2028 and \x00',
        12345678901234567890,
        3.141592653589793,
        [],
        {1: "int key", None: "null key"},
    ],
)
def test_the_producer_encoding_is_compact_json_as_json_dumps_writes_it(value: object) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert producer_module._encode(value) == expected


def test_an_item_that_contains_itself_is_refused_as_json(settings: Settings, queue: Queue) -> None:
    loop: list[object] = []
    loop.append(loop)
    producer = Producer(queue.name, settings)
    try:
        with pytest.raises(InputError, match=r"item 0 of this producer .* contains itself"):
            producer.put(loop)
        producer.put({"still": "fine"})
        producer.flush()
    finally:
        producer.close()
    assert producer.enqueued == 1
