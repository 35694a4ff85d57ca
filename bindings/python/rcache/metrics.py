"""A Client's statistics in the Prometheus text exposition format.

``prometheus(client, label)`` returns what ``rcache_client_metrics`` renders:
every counter of ``Client.stats()`` as ``rcache_<name>_total`` (the error
counters as ``rcache_errors_total{kind="..."}``) and the latency percentiles
as gauges in seconds, each family with its ``# HELP`` and ``# TYPE`` lines.
Serve it as it is, with ``CONTENT_TYPE``::

    from rcache import metrics
    body = metrics.prometheus(client, label="web").encode()
"""

from ctypes import byref, string_at
from typing import Optional

from . import _lib
from .client import Client
from .errors import InvalidArgumentError, from_status

__all__ = ["prometheus", "CONTENT_TYPE"]

#: The Content-Type of the text, for an HTTP response.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_metrics = _lib.lib.rcache_client_metrics
_free = _lib.buffer_free


def prometheus(client: Client, label: Optional[str] = None) -> str:
    """The statistics of ``client`` as Prometheus text; with ``label``, every
    sample carries ``client="<label>"`` (escaped) to tell handles apart.
    The text covers one client: don't concatenate two clients' texts."""
    if label is None or label == "":
        label_bytes = None
    elif isinstance(label, str):
        label_bytes = label.encode("utf-8")
        if b"\0" in label_bytes:
            raise InvalidArgumentError("label must not contain NUL characters")
    else:
        raise TypeError(f"label must be str or None, not {type(label).__name__}")
    buffer = _lib.rcache_buffer()
    status = client._invoke(_metrics, label_bytes, byref(buffer))
    if status != _lib.STATUS_OK:
        raise from_status(status)
    try:
        return string_at(buffer.data, buffer.len).decode("utf-8")
    finally:
        _free(byref(buffer))
