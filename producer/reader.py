"""Reading and validating the input of ``workqueue produce``, before anything is sent.

The whole input is read and checked first, so that a bad line stops the
command with nothing of the input enqueued. The input is read in binary, in
blocks of complete lines, and decoded as strict UTF-8; JSON Lines are checked
with the standard library's C scanner, one value per line, NaN and Infinity
refused. A valid line is kept as its own text (without the line ending and the
surrounding blanks), so it is not serialised again. Every error names the
source and the line: ``data.jsonl:17: invalid JSON: ...``.

Known shortcoming: the validated texts are all held in memory, about 60 bytes
per small item on top of the text itself (some 80 MB for a million items of
``{"n": 123}``). Reading a file twice would avoid that, but not standard
input, and a file could change between the two passes.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from producer.ids import item_id
from workqueue.errors import InputError

BLOCK_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"
# The blanks JSON allows around a value, less "\n", which ends the line.
BLANKS = " \t\r"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# The C scanner under json.loads, called directly: it returns the value and where
# it ends, which saves loads' two regular-expression passes per line. (typeshed
# types its argument as a scanner rather than the decoder it really takes.)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder(parse_constant=_refuse_constant)  # type: ignore[arg-type]
)
_STRING = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(slots=True)
class Input:
    """The validated items of one input: JSON texts, and their ids if taken from a field."""

    texts: list[str]
    ids: list[str] | None
    lines: int


@dataclass(frozen=True, slots=True)
class Format:
    """How to read the lines: as JSON values, or as plain text with `plain`."""

    plain: bool = False
    id_field: str | None = None
    max_item_bytes: int = 1 << 20


def read_input(
    stream: BinaryIO,
    source: str,
    fmt: Format,
    progress: Callable[[int], object] | None = None,
) -> Input:
    """Read `stream` to its end and return its items, or raise `InputError`.

    `source` names the input in errors (``-`` for standard input);
    `progress` is called with the number of bytes of each block read.
    """
    reader = _Reader(source, fmt)
    head: list[bytes] = []  # the line read so far but not yet ended
    head_bytes = 0
    first = True
    while True:
        try:
            block = stream.read(BLOCK_BYTES)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", source=source) from exc
        if not block:
            break
        if progress is not None:
            progress(len(block))
        if first:
            block = block.removeprefix(BOM)
            first = False
        cut = block.rfind(b"\n") + 1
        if not cut:
            head.append(block)
            head_bytes += len(block)
            if head_bytes > fmt.max_item_bytes:
                reader.check_long_line(head)
            continue
        if head:
            head.append(block[:cut])
            reader.feed(b"".join(head))
            head.clear()
            head_bytes = 0
        else:
            reader.feed(block[:cut])
        if cut < len(block):
            head.append(block[cut:])
            head_bytes = len(block) - cut
    if head:
        reader.feed(b"".join(head) + b"\n")
    return reader.result()


class _Reader:
    def __init__(self, source: str, fmt: Format) -> None:
        self.source = source
        self.fmt = fmt
        self.line = 0  # lines before the block being read
        self.texts: list[str] = []
        self.ids: list[str] | None = [] if fmt.id_field is not None else None

    def result(self) -> Input:
        return Input(self.texts, self.ids, self.line)

    def check_long_line(self, head: list[bytes]) -> None:
        """Refuse a line already longer than any item may be, before reading it all."""
        joined = b"".join(head)
        head[:] = [joined]
        if len(joined.strip(BLANKS.encode())) > self.fmt.max_item_bytes:
            raise self.error(
                0,
                f"item is more than {self.fmt.max_item_bytes} bytes, above the limit "
                "(WORKQUEUE_MAX_ITEM_BYTES)",
            )

    def error(self, offset: int, message: str) -> InputError:
        return InputError(message, source=self.source, line=self.line + offset + 1)

    def feed(self, block: bytes) -> None:
        """Check a block of whole lines, each ended by "\\n"."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            start = block.rfind(b"\n", 0, exc.start) + 1
            bad = block[exc.start : exc.end].hex(" ")
            raise self.error(
                block.count(b"\n", 0, exc.start),
                f"not valid UTF-8: {exc.reason} (byte {bad} at byte column "
                f"{exc.start - start + 1})",
            ) from exc
        lines = text.split("\n")
        lines.pop()  # the empty text after the last "\n"
        if self.fmt.plain:
            self._plain(lines)
        elif self.fmt.id_field is not None:
            self._json_with_ids(lines, self.fmt.id_field)
        else:
            self._json(lines)
        self.line += len(lines)

    def _json(self, lines: list[str]) -> None:
        # The hot loop of the command: one scan and a few checks per line.
        append = self.texts.append
        scan = _SCAN
        limit = self.fmt.max_item_bytes
        for offset, raw in enumerate(lines):
            line = raw.strip(BLANKS)
            if not line:
                continue
            try:
                _, end = scan(line, 0)
            except StopIteration as stop:
                raise self._no_value(offset, raw, stop) from None
            except (ValueError, RecursionError) as exc:
                raise self._json_error(offset, raw, exc) from exc
            if end != len(line):
                raise self._extra_data(offset, raw, end)
            if not line.isascii() or len(line) > limit:
                self._check_size(offset, line)
            append(line)

    def _json_with_ids(self, lines: list[str], field: str) -> None:
        append_text = self.texts.append
        ids = self.ids
        assert ids is not None
        append_id = ids.append
        scan = _SCAN
        limit = self.fmt.max_item_bytes
        for offset, raw in enumerate(lines):
            line = raw.strip(BLANKS)
            if not line:
                continue
            try:
                value, end = scan(line, 0)
            except StopIteration as stop:
                raise self._no_value(offset, raw, stop) from None
            except (ValueError, RecursionError) as exc:
                raise self._json_error(offset, raw, exc) from exc
            if end != len(line):
                raise self._extra_data(offset, raw, end)
            if not isinstance(value, dict):
                raise self.error(
                    offset,
                    f"--id-field {field}: the line holds a JSON {_kind(value)}, "
                    "not an object with that field",
                )
            if field not in value:
                raise self.error(offset, f"--id-field {field}: the object has no field {field!r}")
            try:
                key = item_id(value[field])
            except InputError as exc:
                raise self.error(offset, f"--id-field {field}: {exc}") from exc
            if not line.isascii() or len(line) > limit:
                self._check_size(offset, line)
            append_text(line)
            append_id(key)

    def _plain(self, lines: list[str]) -> None:
        append = self.texts.append
        encode = _STRING
        limit = self.fmt.max_item_bytes
        for offset, raw in enumerate(lines):
            line = raw.removesuffix("\r")
            if not line or line.isspace():
                continue
            text = encode(line)
            if not text.isascii() or len(text) > limit:
                self._check_size(offset, text)
            append(text)

    def _check_size(self, offset: int, text: str) -> None:
        size = len(text.encode("utf-8"))
        if size > self.fmt.max_item_bytes:
            raise self.error(
                offset,
                f"item is {size} bytes, above the limit of {self.fmt.max_item_bytes} "
                "(WORKQUEUE_MAX_ITEM_BYTES)",
            )

    def _json_error(self, offset: int, raw: str, exc: BaseException) -> InputError:
        if isinstance(exc, json.JSONDecodeError):
            column = exc.colno + _lead(raw)
            return self.error(offset, f"invalid JSON: {exc.msg} (column {column})")
        if isinstance(exc, RecursionError):
            return self.error(offset, "invalid JSON: nested too deeply")
        return self.error(offset, f"invalid JSON: {exc}")

    def _no_value(self, offset: int, raw: str, stop: StopIteration) -> InputError:
        # The scanner stops where a value should start, and says where.
        at = stop.value if isinstance(stop.value, int) else 0
        return self.error(offset, f"invalid JSON: expected a value (column {at + 1 + _lead(raw)})")

    def _extra_data(self, offset: int, raw: str, end: int) -> InputError:
        return self.error(
            offset,
            f"invalid JSON: extra data after the value at column {end + 1 + _lead(raw)} "
            "(JSON Lines holds one value per line)",
        )


def _lead(raw: str) -> int:
    """How many blanks precede the value on a line."""
    return len(raw) - len(raw.lstrip(BLANKS))


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"
