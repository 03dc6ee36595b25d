"""The exception tree of workqueue.

Every error the project raises on purpose derives from `WorkqueueError`, and
each carries the process exit code the command-line tools use for it::

    WorkqueueError                    exit 1 unless a subclass says otherwise
    ├── UsageError                    exit 2  bad flags, settings or handler path
    ├── InputError                    exit 2  a bad item, id, queue name or input line
    │   └── QueueSealedError          exit 2  new items offered to a sealed queue
    ├── ServerError                   exit 3  Redis cannot be used
    │   ├── ServerUnavailableError    exit 3  unreachable, even after retries
    │   ├── ServerAuthError           exit 3  wrong user or password, or no permission
    │   ├── ServerTooOldError         exit 3  lacks commands the protocol needs
    │   └── ServerOutOfMemoryError    exit 3  the server refused a write (maxmemory)
    ├── WorkFailedError               exit 4  a Job failed or items were dead-lettered
    ├── LauncherError                 exit 5  the cluster refused or could not be reached
    └── PermanentError                -       raised by a handler: dead-letter the item now

Errors carry what a user needs to act (the queue, the item id, the file and
line) as attributes as well as in the message, and chain the underlying cause.
A message never contains a password: URLs pass through `redact_url` first.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_SERVER = 3
EXIT_WORK_FAILED = 4
EXIT_LAUNCHER = 5
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class WorkqueueError(Exception):
    """Root of every error raised by workqueue on purpose."""

    exit_code: int = EXIT_INTERNAL


class UsageError(WorkqueueError):
    """A flag, a setting or a handler path is wrong; retrying will not help."""

    exit_code = EXIT_USAGE


class InputError(WorkqueueError):
    """An item, an item id, a queue name or a line of producer input is invalid.

    `source` names the file (or ``-`` for standard input), `line` the 1-based
    line number, and `item_id` the item, when they are known.
    """

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        item_id: str | None = None,
    ) -> None:
        where = []
        if source is not None:
            where.append(f"{source}:{line}" if line is not None else source)
        if item_id is not None:
            where.append(f"item {item_id!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.source = source
        self.line = line
        self.item_id = item_id


class QueueSealedError(InputError):
    """New items were offered to a queue that its producer already sealed."""

    def __init__(self, queue: str) -> None:
        super().__init__(
            f"queue {queue!r} is sealed: it takes no new items "
            "(delete it, or use another queue name, to start over)"
        )
        self.queue = queue


class ServerError(WorkqueueError):
    """The Redis server cannot be used."""

    exit_code = EXIT_SERVER


class ServerUnavailableError(ServerError):
    """The server did not answer, even after retrying with back-off."""


class ServerAuthError(ServerError):
    """The server refused the credentials, or the user lacks a permission."""


class ServerTooOldError(ServerError):
    """The server lacks commands the queue protocol uses."""


class ServerOutOfMemoryError(ServerError):
    """The server refused a write because it reached its memory limit."""


class WorkFailedError(WorkqueueError):
    """The work did not all succeed: a Job failed, or items were dead-lettered."""

    exit_code = EXIT_WORK_FAILED


class LauncherError(WorkqueueError):
    """The Kubernetes API refused a request, or no cluster could be reached."""

    exit_code = EXIT_LAUNCHER


class PermanentError(WorkqueueError):
    """Raise from a handler to dead-letter the item at once, without retries.

    Use it for an item that can never succeed (a malformed record, a missing
    object); any other exception is retried with back-off up to the maximum
    number of attempts.
    """
