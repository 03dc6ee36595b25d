"""`workqueue produce` as a real process against a real server."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from support import cli, cli_env

from workqueue.queue import Queue


def produce(
    redis_url: str, *args: str, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cli("produce", *args),
        check=False,
        env=cli_env(redis_url, **env),
        input=stdin,
        capture_output=True,
        timeout=120,
    )
    # Decoded here, as the command prints only UTF-8 text.
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def status(redis_url: str, queue_name: str) -> dict[str, int | bool]:
    out = subprocess.run(
        cli("status", queue_name, "--json"),
        env=cli_env(redis_url),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, int | bool] = json.loads(out.stdout)
    return result


def stored_items(queue: Queue) -> dict[str, str]:
    items: dict[str, str] = queue.connection.client.hgetall(queue.keys.items)
    return items


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_jsonl_file_is_enqueued_sealed_and_summed_up_in_one_line(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    data = write(tmp_path / "data.jsonl", b"".join(b'{"n": %d}\n' % n for n in range(1000)) + b"\n")
    out = produce(redis_url, queue.name, data)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        f"produced 1000 items to queue {queue.name}: 1000 enqueued, 0 duplicates skipped, sealed\n"
    )
    stats = status(redis_url, queue.name)
    assert stats["pending"] == 1000 and stats["sealed"] is True
    texts = stored_items(queue).values()
    assert sorted(json.loads(t)["n"] for t in texts) == list(range(1000))
    assert '{"n": 7}' in texts  # the line's own text, not re-serialised


def test_standard_input_is_read_by_default_and_with_a_dash(redis_url: str, queue: Queue) -> None:
    out = produce(redis_url, queue.name, "--keep-open", stdin=b'"a"\n"b"\n')
    assert out.returncode == 0, out.stderr
    out = produce(redis_url, queue.name, "-", stdin=b'"c"\n')
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("1 enqueued, 0 duplicates skipped, sealed\n")
    assert sorted(stored_items(queue).values()) == ['"a"', '"b"', '"c"']


def test_empty_input_still_seals_the_queue(redis_url: str, queue: Queue) -> None:
    out = produce(redis_url, queue.name, stdin=b"\n\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        f"produced 0 items to queue {queue.name}: 0 enqueued, 0 duplicates skipped, sealed\n"
    )
    assert status(redis_url, queue.name)["sealed"] is True


def test_keep_open_leaves_the_queue_unsealed_and_says_so(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    out = produce(redis_url, queue.name, write(tmp_path / "d.jsonl", b"1\n2\n"), "--keep-open")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(": 2 enqueued, 0 duplicates skipped, left open\n")
    assert status(redis_url, queue.name)["sealed"] is False


def test_lines_mode_turns_each_text_line_into_a_json_string(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    data = write(tmp_path / "paths.txt", b'images/a b.png\r\n\nimages/"c".png\ncaf\xc3\xa9\n')
    out = produce(redis_url, queue.name, data, "--lines")
    assert out.returncode == 0, out.stderr
    assert "produced 3 items" in out.stdout
    values = sorted(json.loads(t) for t in stored_items(queue).values())
    assert values == ["café", 'images/"c".png', "images/a b.png"]


def test_id_field_names_items_and_a_rerun_skips_them_all(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    data = write(
        tmp_path / "jobs.jsonl",
        b'{"key": "a", "v": 1}\n{"key": 2, "v": 2}\n{"key": "a", "v": 3}\n',
    )
    out = produce(redis_url, queue.name, data, "--id-field", "key")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        f"produced 3 items to queue {queue.name}: 2 enqueued, 1 duplicate skipped, sealed\n"
    )
    assert set(stored_items(queue)) == {"a", "2"}
    # The queue is sealed, but offering only known ids adds no work: allowed.
    again = produce(redis_url, queue.name, data, "--id-field", "key")
    assert again.returncode == 0, again.stderr
    assert ": 0 enqueued, 3 duplicates skipped, sealed" in again.stdout
    assert status(redis_url, queue.name)["pending"] == 2


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'{"n": 1}\n{"n": 2}\n{"n": 3,}\n{"n": 4}\n', "data.jsonl:3: invalid JSON"),
        (b'{"n": 1}\n"caf\xe9"\n{"n": 3}\n', "data.jsonl:2: not valid UTF-8"),
        (b'{"n": 1}\n{"n": NaN}\n', "data.jsonl:2: invalid JSON: NaN is not valid JSON"),
    ],
)
def test_a_bad_line_exits_2_naming_file_and_line_and_enqueues_nothing(
    redis_url: str, queue: Queue, tmp_path: Path, data: bytes, where: str
) -> None:
    path = write(tmp_path / "data.jsonl", data)
    out = produce(redis_url, queue.name, path)
    assert out.returncode == 2
    assert out.stdout == ""
    assert f"workqueue produce: error: {tmp_path / where}" in out.stderr
    stats = status(redis_url, queue.name)
    assert stats["pending"] == 0 and stats["sealed"] is False


def test_a_bad_line_on_standard_input_is_named_with_a_dash(redis_url: str, queue: Queue) -> None:
    out = produce(redis_url, queue.name, stdin=b"1\n2\n{\n")
    assert out.returncode == 2
    assert "workqueue produce: error: -:3: invalid JSON" in out.stderr
    assert status(redis_url, queue.name)["pending"] == 0


def test_a_missing_id_field_exits_2_naming_the_line(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    path = write(tmp_path / "jobs.jsonl", b'{"id": "a"}\n{"id": "b"}\n{"name": "c"}\n')
    out = produce(redis_url, queue.name, path, "--id-field", "id")
    assert out.returncode == 2
    assert f"{path}:3: --id-field id: the object has no field 'id'" in out.stderr
    assert status(redis_url, queue.name)["pending"] == 0


def test_an_item_above_the_size_limit_exits_2_naming_the_line(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    path = write(tmp_path / "big.jsonl", b'"small"\n"' + b"x" * 100 + b'"\n"small"\n')
    out = produce(redis_url, queue.name, path, WORKQUEUE_MAX_ITEM_BYTES="64")
    assert out.returncode == 2
    assert f"{path}:2: item is 102 bytes, above the limit of 64" in out.stderr
    assert status(redis_url, queue.name)["pending"] == 0


def test_a_sealed_queue_exits_2_with_its_message(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    path = write(tmp_path / "d.jsonl", b"1\n")
    assert produce(redis_url, queue.name, path).returncode == 0
    out = produce(redis_url, queue.name, path)
    assert out.returncode == 2
    assert f"queue '{queue.name}' is sealed: it takes no new items" in out.stderr
    assert status(redis_url, queue.name)["pending"] == 1


def test_usage_errors_exit_2(redis_url: str, queue: Queue, tmp_path: Path) -> None:
    out = produce(redis_url, queue.name, str(tmp_path / "missing.jsonl"))
    assert out.returncode == 2
    assert f"{tmp_path / 'missing.jsonl'}: cannot open: No such file or directory" in out.stderr
    out = produce(redis_url, queue.name, "--lines", "--id-field", "id", stdin=b"x\n")
    assert out.returncode == 2 and "--id-field needs JSON Lines" in out.stderr
    out = produce(redis_url, queue.name, "--batch-size", "0", stdin=b"1\n")
    assert out.returncode == 2 and "batch_size" in out.stderr
    assert status(redis_url, queue.name)["pending"] == 0


def test_rerun_after_a_crash_adds_no_duplicates(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    total = 100_000
    path = write(tmp_path / "jobs.jsonl", b"".join(b'{"id": "job-%d"}\n' % n for n in range(total)))
    # Small batches make the run long enough to kill it half-way.
    crashed = subprocess.Popen(
        cli("produce", queue.name, path, "--id-field", "id", "--batch-size", "5"),
        env=cli_env(redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while queue.stats().pending == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    crashed.kill()
    crashed.communicate()
    before = queue.stats()
    assert 0 < before.pending < total, "the first run was not caught half-way"
    assert not before.sealed

    out = produce(redis_url, queue.name, path, "--id-field", "id")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        f"produced {total} items to queue {queue.name}: {total - before.pending} enqueued, "
        f"{before.pending} duplicates skipped, sealed\n"
    )
    after = queue.stats()
    assert after.pending == total and after.sealed
    assert len(stored_items(queue)) == total
