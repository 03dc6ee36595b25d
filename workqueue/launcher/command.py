"""The launcher's commands: `launch`, `jobs list`, `jobs delete` and `demo`."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from workqueue.errors import UsageError, WorkFailedError
from workqueue.queue import Queue
from workqueue.settings import load_settings

if TYPE_CHECKING:
    from workqueue.launcher.spec import JobOptions

# The kubernetes client takes most of a second to import; every `workqueue`
# command (consumers in Pods included) builds this parser, so the launcher's
# modules are imported only when a launcher command runs.


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {value!r}: expected KEY=VALUE")
        out[key] = val
    return out


def job_options(args: argparse.Namespace) -> JobOptions:
    """JobOptions from the launch flags (JobOptions checks the values)."""
    from workqueue.launcher.spec import JobOptions, Resources  # noqa: PLC0415

    command = args.full_command or None
    if command and command[0] == "--":
        command = command[1:]
    if command and args.handler:
        raise UsageError("give --handler or a command after --, not both")
    if not command and not (args.queue and args.handler):
        raise UsageError("give --queue and --handler, or a full command after --")
    settings: dict[str, Any] = {}
    for name in ("lease_seconds", "max_attempts", "grace_seconds"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    image = args.image
    if image is None:
        if args.backend == "kubernetes" and not args.dry_run:
            raise UsageError("--image is required with --backend kubernetes")
        image = "workqueue-worker:latest"
    return JobOptions(
        image=image,
        queue=args.queue,
        handler=args.handler,
        command=command,
        concurrency=args.concurrency,
        max_items=args.max_items,
        name=args.name or "",
        namespace=args.namespace,
        parallelism=args.parallelism,
        completions=args.completions,
        indexed=args.indexed,
        restart_policy=args.restart_policy,
        backoff_limit=args.backoff_limit,
        active_deadline_seconds=args.active_deadline_seconds,
        ttl_seconds_after_finished=args.ttl_seconds_after_finished,
        resources=Resources(
            cpu_request=args.cpu_request,
            cpu_limit=args.cpu_limit,
            memory_request=args.memory_request,
            memory_limit=args.memory_limit,
        ),
        settings=settings,
        labels=_pairs(args.label, "--label"),
        selector=_pairs(args.selector, "--selector") or None,
        redis_secret=args.redis_secret,
        service_account=args.service_account,
    )


class QueueWatch(threading.Thread):
    """Polls a queue's stats while a Job runs, for the progress display."""

    def __init__(self, queue: Queue, interval: float = 0.5) -> None:
        super().__init__(name="workqueue-queue-watch", daemon=True)
        self.queue = queue
        self.interval = interval
        self.latest: dict[str, Any] | None = None
        self.error: str | None = None
        self._halt = threading.Event()
        self._shown = 0.0

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            self.latest = self.queue.stats().as_dict()
            self.error = None
        except Exception as exc:  # the display must not end the run
            self.error = str(exc)

    def stop(self) -> None:
        self._halt.set()

    def line(self) -> str:
        if self.latest is None:
            return f"queue {self.queue.name}: {self.error or 'no stats yet'}"
        s = self.latest
        return (
            f"queue {self.queue.name}: done {s['done']}, pending {s['pending']}, "
            f"leased {s['leased']}, delayed {s['delayed']}, dead {s['dead']}"
        )

    def show(self, prefix: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._shown >= 1.0:
            self._shown = now
            print(f"{prefix}{self.line()}", file=sys.stderr, flush=True)


def _queue_for(args: argparse.Namespace, queue: str | None) -> Queue | None:
    if queue is None:
        return None
    return Queue.from_settings(queue, load_settings(redis_url=args.redis_url))


def _finish(condition: str, reason: str | None, watch: QueueWatch | None) -> int:
    dead = 0
    if watch is not None:
        watch.poll()
        watch.show(force=True)
        dead = int(watch.latest["dead"]) if watch.latest else 0
    if condition != "Complete":
        raise WorkFailedError(f"the Job failed: {reason or 'unknown reason'}")
    if dead:
        raise WorkFailedError(f"the Job completed, but {dead} item(s) were dead-lettered")
    print("the Job completed", file=sys.stderr)
    return 0


def _launch(args: argparse.Namespace) -> int:
    from workqueue.launcher.builder import build_cronjob, build_job  # noqa: PLC0415
    from workqueue.launcher.manifest import to_yaml  # noqa: PLC0415

    opts = job_options(args)
    if args.schedule:
        obj: Any = build_cronjob(opts, args.schedule, time_zone=args.time_zone)
    else:
        obj = build_job(opts)
    if args.dry_run:
        sys.stdout.write(to_yaml([obj]))
        return 0
    if args.backend == "local":
        if args.schedule:
            raise UsageError("--schedule needs --backend kubernetes (the local engine runs Jobs)")
        return _launch_local(args, opts, obj)
    return _launch_kubernetes(args, obj)


def _launch_local(args: argparse.Namespace, opts: JobOptions, job: Any) -> int:
    from workqueue.launcher.local import LocalJobEngine  # noqa: PLC0415 - heavy import

    settings = load_settings(redis_url=args.redis_url)
    secrets = {(opts.redis_secret, opts.redis_secret_key): settings.redis_url.get_secret_value()}
    watch = None
    if opts.queue is not None:
        watch = QueueWatch(Queue.from_settings(opts.queue, settings))
        watch.start()
    engine = LocalJobEngine(job, secrets=secrets, backoff_scale=args.backoff_scale)
    try:
        result = engine.run()
    finally:
        if watch is not None:
            watch.stop()
    print(
        f"Job {result.name}: {result.condition}"
        f"{' (' + result.reason + ')' if result.reason else ''}; "
        f"{result.succeeded} pod(s) succeeded, {result.failed} failed, "
        f"{result.wall_seconds:.1f}s",
        file=sys.stderr,
    )
    return _finish(result.condition, result.reason, watch)


def _launch_kubernetes(args: argparse.Namespace, obj: Any) -> int:
    from workqueue.launcher.kube import KubeBackend  # noqa: PLC0415 - heavy import

    if args.schedule:
        raise UsageError(
            "--schedule needs --dry-run: create CronJobs with kubectl, "
            "workqueue launch --schedule ... --dry-run | kubectl apply -f -"
        )
    with KubeBackend(kubeconfig=args.kubeconfig, context=args.context) as backend:
        namespace = args.namespace or backend.default_namespace
        created = backend.create_job(obj, namespace)
        name = str(created.metadata.name if created.metadata else obj.metadata.name)
        print(f"created Job {namespace}/{name} on {backend.server}", file=sys.stderr)
        if not args.wait:
            return 0
        watch = _queue_for(args, args.queue)
        watcher = QueueWatch(watch) if watch is not None else None

        def on_update(counts: Any) -> None:
            print(
                f"Job {name}: active {counts.active}, succeeded {counts.succeeded}, "
                f"failed {counts.failed}",
                file=sys.stderr,
            )
            if watcher is not None:
                watcher.poll()
                watcher.show()

        outcome = backend.wait_job(name, namespace, on_update=on_update)
        print(f"Job {name}: {outcome.condition} {outcome.reason or ''}".rstrip(), file=sys.stderr)
        return _finish(outcome.condition, outcome.reason, watcher)


def _jobs_list(args: argparse.Namespace) -> int:
    from workqueue.launcher.kube import KubeBackend  # noqa: PLC0415 - heavy import

    with KubeBackend(kubeconfig=args.kubeconfig, context=args.context) as backend:
        namespace = args.namespace or backend.default_namespace
        rows = backend.list_jobs(namespace, args.selector, all_namespaces=args.all_namespaces)
    print(f"{'NAMESPACE':<16} {'NAME':<40} {'STATE':<10} ACTIVE SUCCEEDED FAILED")
    for row in rows:
        print(
            f"{row.namespace:<16} {row.name:<40} {row.condition:<10} "
            f"{row.active:>6} {row.succeeded:>9} {row.failed:>6}"
        )
    return 0


def _jobs_delete(args: argparse.Namespace) -> int:
    from workqueue.launcher.kube import KubeBackend  # noqa: PLC0415 - heavy import

    with KubeBackend(kubeconfig=args.kubeconfig, context=args.context) as backend:
        namespace = args.namespace or backend.default_namespace
        gone = backend.delete_jobs(namespace, args.selector, all_namespaces=args.all_namespaces)
    for ref in gone:
        print(f"deleted Job {ref}")
    if not gone:
        print("no Job matched")
    return 0


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default as kubectl)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")


def register(sub: Any) -> None:
    from workqueue.launcher.demo import register as register_demo  # noqa: PLC0415

    launch: argparse.ArgumentParser = sub.add_parser(
        "launch",
        help="create the consumers' Job on Kubernetes, or run it on the local engine",
        description=(
            "Build the consumers' Job and create it on a cluster (--backend kubernetes), "
            "run it here as local processes (--backend local), or print it (--dry-run). "
            "Without --completions it is a work-queue Job: parallel consumers that exit 0 "
            "only when the queue is finished. Give --queue and --handler, or a full "
            "command after --."
        ),
    )
    launch.add_argument("--backend", choices=["kubernetes", "local"], default="kubernetes")
    launch.add_argument("--image", help="worker image (required on Kubernetes)")
    launch.add_argument("--queue", help="queue the consumers drain")
    launch.add_argument("--handler", metavar="MODULE:FUNCTION", help="the consumers' handler")
    launch.add_argument("--name", help="Job name (default wq-<queue>-<random>)")
    launch.add_argument("--parallelism", type=int, default=1, metavar="M", help="Pods at once")
    launch.add_argument(
        "--completions", type=int, metavar="N", help="fixed completions (unset: work queue)"
    )
    launch.add_argument("--indexed", action="store_true", help="completionMode Indexed")
    launch.add_argument("--concurrency", type=int, metavar="N", help="items at once per Pod")
    launch.add_argument("--max-items", type=int, metavar="M", help="items per Pod (with N)")
    launch.add_argument("--restart-policy", choices=["OnFailure", "Never"], default="OnFailure")
    launch.add_argument("--backoff-limit", type=int, default=6)
    launch.add_argument("--active-deadline-seconds", type=int)
    launch.add_argument("--ttl-seconds-after-finished", type=int)
    launch.add_argument("--cpu-request")
    launch.add_argument("--cpu-limit")
    launch.add_argument("--memory-request")
    launch.add_argument("--memory-limit")
    launch.add_argument("--lease-seconds", type=float)
    launch.add_argument("--max-attempts", type=int)
    launch.add_argument("--grace-seconds", type=float)
    launch.add_argument("--label", action="append", metavar="K=V", help="extra label")
    launch.add_argument(
        "--selector", action="append", metavar="K=V", help="your own selector (manualSelector)"
    )
    launch.add_argument("--redis-secret", default="workqueue-redis", help="Secret with key url")
    launch.add_argument("--service-account")
    launch.add_argument("--schedule", help="a cron schedule: build a CronJob instead")
    launch.add_argument("--time-zone", help="the CronJob's time zone")
    launch.add_argument("--dry-run", action="store_true", help="print YAML for kubectl apply")
    launch.add_argument(
        "--wait", action="store_true", help="follow the Job (and the queue) until it ends"
    )
    launch.add_argument(
        "--backoff-scale",
        type=float,
        default=1.0,
        help="local engine: scale the controller's 10 s retry delay (e.g. 0.01)",
    )
    launch.add_argument("--redis-url", help="Redis URL for --backend local and --wait")
    _cluster_flags(launch)
    launch.add_argument(
        "full_command", metavar="-- COMMAND", nargs=argparse.REMAINDER, help="full command"
    )
    launch.set_defaults(run=_launch)

    jobs: argparse.ArgumentParser = sub.add_parser("jobs", help="list or delete Jobs by label")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    listing: argparse.ArgumentParser = jobs_sub.add_parser("list", help="list Jobs")
    deleting: argparse.ArgumentParser = jobs_sub.add_parser("delete", help="delete Jobs")
    for parser, required in ((listing, False), (deleting, True)):
        parser.add_argument(
            "-l",
            "--selector",
            required=required,
            default="app.kubernetes.io/name=workqueue" if not required else None,
            help="label selector, e.g. workqueue.dev/queue=images",
        )
        parser.add_argument("-A", "--all-namespaces", action="store_true")
        _cluster_flags(parser)
    listing.set_defaults(run=_jobs_list)
    deleting.set_defaults(run=_jobs_delete)

    register_demo(sub)
