"""The `workqueue` command: its root parser, logging set-up and exit codes.

The core must not import `producer` or `consumer`, so their commands join the
root through the ``workqueue.commands`` entry-point group (see pyproject.toml):
each entry names a ``register(subparsers)`` function. The core's own commands
(status, seal, launch...) are registered directly.

Every command function takes the parsed arguments and returns an exit code;
errors derived from `WorkqueueError` are printed as one line and exit with the
code their class documents (see workqueue/errors.py and the README).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from workqueue.errors import EXIT_INTERNAL, EXIT_SIGINT, EXIT_USAGE, WorkqueueError

log = logging.getLogger(__name__)

Register = Callable[[Any], None]
CORE_COMMANDS = ("workqueue.admin:register", "workqueue.launcher.command:register")


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """Flags every command that talks to Redis shares."""
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="Redis URL (default: $WORKQUEUE_REDIS_URL, else redis://localhost:6379/0)",
    )
    parser.add_argument("--key-prefix", metavar="P", help="prefix of the Redis keys (default wq)")


def _load(target: str) -> Register:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    fn: Register = getattr(module, attr)
    return fn


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workqueue",
        description="Run batch work as parallel Kubernetes Jobs draining a Redis work queue.",
        epilog="Exit codes: 0 done, 1 internal error, 2 bad usage or input, 3 Redis unusable, "
        "4 work failed, 5 Kubernetes error, 130 interrupted, 143 terminated.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    registrations = [_load(target) for target in CORE_COMMANDS]
    registrations.extend(ep.load() for ep in entry_points(group="workqueue.commands"))
    for register in registrations:
        register(sub)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except WorkqueueError as exc:
        print(f"workqueue {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"workqueue {args.command}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:
        return EXIT_USAGE
    except Exception:
        log.exception("internal error (please report it)")
        return EXIT_INTERNAL
