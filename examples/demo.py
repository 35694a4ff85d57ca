"""rcache from Python: set, get, expire, count, many at once.

Runs on the embedded backend, or on the server named by RCACHE_URL
(for example redis://127.0.0.1:6379/0).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))

import rcache  # noqa: E402


def main():
    url = os.environ.get("RCACHE_URL") or "memory://"
    print(f"rcache {rcache.__version__}, backend {url}")
    with rcache.Client(url, prefix="rcache-demo:") as client:
        client.set("greeting", b"hello from Python", ttl=60)
        print(f"set greeting (ttl 60 s) -> get: {client.get('greeting')!r}, {client.ttl('greeting'):.1f} s left")

        client.set("flash", b"gone soon", ttl=0.2)
        print(f"set flash (ttl 0.2 s) -> get: {client.get('flash')!r}")
        time.sleep(0.3)
        print(f"0.3 s later -> get: {client.get('flash')!r} (expired)")

        client.delete("visits")
        for _ in range(3):
            visits = client.incr("visits", ttl=60)
        print(f"incr visits three times -> {visits}, {client.ttl('visits'):.1f} s left (TTL set when created)")

        client.set_many({"a": b"1", "b": b"2"}, ttl=60)
        print(f"set_many a, b -> get_many a, b, c: {client.get_many(['a', 'b', 'c'])}")

    objects = rcache.Cache(url, prefix="rcache-demo-objects:")
    objects.set("profile", {"name": "Ada", "langs": ["C", "Python"]}, ttl=60)
    print(f"pickled dict round trip -> {objects.get('profile')}")
    objects.close()


if __name__ == "__main__":
    main()
