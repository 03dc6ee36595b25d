"""The producer side of workqueue: the `Producer` library and ``workqueue produce``.

`Producer` puts JSON items on a queue from Python (see producer.producer); the
command reads them from a JSON Lines or text file (see producer.command).
"""

from producer.producer import Producer

__all__ = ["Producer"]
