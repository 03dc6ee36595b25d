"""Checking caller-given item ids fast enough for a million of them.

`workqueue.queue.check_item_id` states the rules (a string or an integer; not
empty, at most 256 bytes, no control character, not starting with "#", valid
Unicode) and costs about 4 microseconds per id, as it walks the text in
Python; producing a million items with ids would spend seconds on it. Most ids
are short printable ASCII strings or integers, for which three string methods
written in C decide the same thing. `item_id` accepts those at once and hands
every other value to `check_item_id`, which decides it and words the error,
so the rules stay in one place.
"""

from __future__ import annotations

from workqueue.queue import GENERATED_ID_MARK, MAX_ID_BYTES, check_item_id


def item_id(value: object, *, source: str | None = None, line: int | None = None) -> str:
    """`value` as an item id, by the rules of `check_item_id`; raises `InputError`."""
    if isinstance(value, str):
        # ASCII and printable: no control character, and one byte per character.
        if (
            value.isascii()
            and value.isprintable()
            and 0 < len(value) <= MAX_ID_BYTES
            and not value.startswith(GENERATED_ID_MARK)
        ):
            return str(value)
    elif type(value) is int:  # not bool, which check_item_id refuses
        text = str(value)
        if len(text) <= MAX_ID_BYTES:
            return text
    return check_item_id(value, source=source, line=line)
