# A web2py controller: each function is an action, /<app>/default/<function>.
# It runs after the models, with their names (cache.redis, sessiondb) in scope.
import time


def _expensive_report():
    time.sleep(0.05)  # a slow query, say
    return {"generated_at": time.time(), "rows": 42}


def index():
    """Counts this visitor's visits (in the session) and serves a report
    cached in Redis for 60 seconds, computed by one process at a time."""
    session.visits = (session.visits or 0) + 1  # noqa: F821
    report = cache.redis("report", _expensive_report, time_expire=60)  # noqa: F821
    return dict(visits=session.visits, report=report)  # noqa: F821


def refresh():
    """Drops the cached report: the next index() computes it again."""
    return dict(cleared=cache.redis.clear(regex="report"))  # noqa: F821


def stats():
    """This application's cache hits and misses, over every process."""
    return cache.redis.stats()["w2p_stats"]  # noqa: F821
