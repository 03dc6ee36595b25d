"""workqueue: batch work as parallel Kubernetes Jobs draining a reliable Redis queue.

This package is the core shared by the producer (`producer`), the consumer SDK
(`consumer`) and the launcher: settings, the Redis protocol, the errors and the
command-line root. It imports neither `producer` nor `consumer`.
"""

from workqueue.errors import PermanentError, WorkqueueError
from workqueue.queue import Queue, Stats
from workqueue.settings import Settings, load_settings

__all__ = ["PermanentError", "Queue", "Settings", "Stats", "WorkqueueError", "load_settings"]
__version__ = "0.1.0"
