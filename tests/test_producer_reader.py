"""Validation of `workqueue produce` input, in process: no server is involved."""

from __future__ import annotations

import io
import json
from typing import BinaryIO, cast

import pytest

import producer.reader as reader_module
from producer.ids import item_id
from producer.reader import Format, Input, read_input
from workqueue.errors import InputError
from workqueue.queue import check_item_id


def read(data: bytes, fmt: Format | None = None) -> Input:
    return read_input(io.BytesIO(data), "data.jsonl", fmt or Format())


def test_each_line_is_kept_as_its_own_text_without_blanks_and_line_ending() -> None:
    got = read(b'{"n": 1}\n\n   \n  [1, 2] \r\n"s"\t\r\n7')
    assert got.texts == ['{"n": 1}', "[1, 2]", '"s"', "7"]
    assert got.ids is None and got.lines == 6


def test_a_utf8_byte_order_mark_at_the_start_is_dropped() -> None:
    assert read(b'\xef\xbb\xbf{"a": "\xc3\xa9"}\n').texts == ['{"a": "é"}']


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"n": 1}\n{"n": \n', "data.jsonl:2: invalid JSON: expected a value (column 6)"),
        (b"[1, 2,]\n", "data.jsonl:1: invalid JSON: expected a value (column 7)"),
        (b"1\n2\n  {'a': 1}\n", "data.jsonl:3: invalid JSON: Expecting property name"),
        (b'{"n": 1} {"n": 2}\n', "data.jsonl:1: invalid JSON: extra data after the value at col"),
        (b"[1]\nNaN\n", "data.jsonl:2: invalid JSON: NaN is not valid JSON"),
        (b'{"x": -Infinity}\n', "data.jsonl:1: invalid JSON: -Infinity is not valid JSON"),
        (b"\n\n  nope\n", "data.jsonl:3: invalid JSON: expected a value (column 3)"),
        (b'"tab\tinside"\n', "data.jsonl:1: invalid JSON: Invalid control character"),
        (b"[" * 100_000 + b"\n", "data.jsonl:1: invalid JSON: nested too deeply"),
    ],
)
def test_malformed_json_names_the_line(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read(data)
    assert info.value.source == "data.jsonl"


def test_invalid_utf8_names_the_line_and_the_byte() -> None:
    with pytest.raises(InputError) as info:
        read(b'"ok"\n"caf\xc3\xa9"\n"bad \xff byte"\n')
    assert info.value.line == 3
    assert str(info.value).startswith("data.jsonl:3: not valid UTF-8: invalid start byte (byte ff")


def test_line_numbers_stay_right_across_block_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "BLOCK_BYTES", 7)
    data = b"".join(b'{"n": %d}\n' % n for n in range(40)) + b'{"n": oops}\n'
    with pytest.raises(InputError, match=r"^data.jsonl:41: invalid JSON"):
        read(data)
    got = read(data[: -len(b'{"n": oops}\n')] + b'"last, without newline"')
    assert len(got.texts) == 41 and got.texts[-1] == '"last, without newline"'
    assert [json.loads(t) for t in got.texts[:40]] == [{"n": n} for n in range(40)]


def test_an_item_above_the_size_limit_names_its_line() -> None:
    fmt = Format(max_item_bytes=16)
    assert read(b'"' + b"x" * 14 + b'"\n', fmt).texts  # 16 bytes: at the limit
    with pytest.raises(InputError, match=r"data.jsonl:2: item is 17 bytes, above the limit of 16"):
        read(b'"x"\n"' + b"x" * 15 + b'"\n', fmt)
    # Counted in UTF-8 bytes, not characters.
    with pytest.raises(InputError, match=r"data.jsonl:1: item is 18 bytes"):
        read('"{}"\n'.format("é" * 8).encode(), fmt)


class EndlessLine(io.RawIOBase):
    """A line "1", then a second line that never ends; counts the bytes given."""

    def __init__(self) -> None:
        self.given = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = b"1\n" if self.given == 0 else b"x" * size
        self.given += len(chunk)
        return chunk


def test_a_line_longer_than_the_limit_is_refused_before_it_is_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reader_module, "BLOCK_BYTES", 64)
    stream = EndlessLine()
    with pytest.raises(InputError, match=r"data.jsonl:2: item is more than 1000 bytes"):
        read_input(cast(BinaryIO, stream), "data.jsonl", Format(max_item_bytes=1000))
    assert stream.given < 1200


def test_plain_lines_become_json_strings_and_blank_lines_are_skipped() -> None:
    got = read(b'plain text\r\n\n  \n  "quoted" \\ back\ttab\ncaf\xc3\xa9\n', Format(plain=True))
    assert [json.loads(t) for t in got.texts] == [
        "plain text",
        '  "quoted" \\ back\ttab',
        "café",
    ]
    assert got.texts[2] == '"café"'  # kept as UTF-8, not escaped


def test_id_field_takes_string_and_integer_ids() -> None:
    got = read(b'{"id": "a", "v": 1}\n{"id": 7}\n', Format(id_field="id"))
    assert got.ids == ["a", "7"] and got.texts == ['{"id": "a", "v": 1}', '{"id": 7}']


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"other": 1}', r"data.jsonl:2: --id-field id: the object has no field 'id'"),
        (b"[1, 2]", r"data.jsonl:2: --id-field id: the line holds a JSON array, not an object"),
        (b'"id"', r"data.jsonl:2: --id-field id: the line holds a JSON string"),
        (b'{"id": null}', r"data.jsonl:2: --id-field id: item id must be a string or an int"),
        (b'{"id": true}', r"data.jsonl:2: --id-field id: item id must be .* not bool"),
        (b'{"id": 1.5}', r"data.jsonl:2: --id-field id: item id must be .* not float"),
        (b'{"id": ""}', r"data.jsonl:2: --id-field id: item id is empty"),
        (b'{"id": "#3"}', r"data.jsonl:2: --id-field id: .* kept for generated ids"),
        (b'{"id": "a\\u0007"}', r"data.jsonl:2: --id-field id: .* control character"),
    ],
)
def test_a_bad_or_missing_id_field_names_the_line(line: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read(b'{"id": "fine"}\n' + line + b"\n", Format(id_field="id"))


@pytest.mark.parametrize(
    "value",
    [
        "a",
        "path/to/file.txt",
        "with space",
        "x" * 256,
        "x" * 257,
        "é" * 128,
        "é" * 129,
        "",
        "#1",
        "a#1",
        "\x7f",
        "tab\t",
        "\u2028",
        "\ud800",
        0,
        -5,
        10**300,
        True,
        None,
        1.0,
    ],
)
def test_the_fast_id_check_agrees_with_check_item_id(value: object) -> None:
    try:
        expected: str | None = check_item_id(value)
    except InputError:
        expected = None
    try:
        got: str | None = item_id(value)
    except InputError:
        got = None
    assert got == expected
