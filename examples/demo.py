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

        client.set("profile:1", b"Ada", ttl=60, tags=["user:1"])
        client.set("avatar:1", b"<png>", ttl=60, tags=["user:1"])
        client.invalidate_tags(["user:1"])
        print(f"tagged profile:1, avatar:1 with user:1, invalidated it -> {client.get_many(['profile:1', 'avatar:1'])}")

        calls = []

        def expensive():
            calls.append(1)
            time.sleep(0.1)
            return b"report"

        first = client.get_or_set("report", expensive, ttl=60)
        second = client.get_or_set("report", expensive, ttl=60)
        print(f"get_or_set twice -> {first!r}, {second!r}; computed {len(calls)} time(s)")

        sessions = rcache.SessionStore(client, "sessions:")
        session_id, secret = sessions.create({"user": b"ada"}, ttl=3600)
        session = sessions.load(session_id, secret)
        sessions.save(session_id, secret, {"cart": b"2 books"}, version=session.version, ttl=3600)
        print(f"session {session_id[:8]}… -> {sessions.load(session_id, secret).fields}; "
              f"with a wrong secret -> {sessions.load(session_id, 'forged')}")
        print(f"stats: {client.stats()['hits']} hits, {client.stats()['misses']} misses")
        print(f"clear the demo's namespace -> {client.clear()} keys deleted")

    objects = rcache.Cache(url, prefix="rcache-demo-objects:")
    objects.set("profile", {"name": "Ada", "langs": ["C", "Python"]}, ttl=60)
    print(f"pickled dict round trip -> {objects.get('profile')}")
    objects.clear()
    objects.close()


if __name__ == "__main__":
    main()
