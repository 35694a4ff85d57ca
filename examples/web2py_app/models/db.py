# A web2py model using rcache for the cache and the sessions.
#
# In a web2py application this file is applications/<app>/models/db.py:
# web2py runs it at the start of every request with request, response,
# session and cache already defined. Outside web2py, ../run.py plays that part.
#
# The imports name rcache's drop-ins. A deployment that copied the files of
# rcache/web2py/gluon_contrib/ over web2py's own imports the same classes as
#     from gluon.contrib.redis_utils import RConn
#     from gluon.contrib.redis_cache import RedisCache
#     from gluon.contrib.redis_session import RedisSession
import os

from rcache.web2py.redis_cache import RedisCache
from rcache.web2py.redis_session import RedisSession
from rcache.web2py.redis_utils import RConn

# One connection per application and process, made by the first request.
# With redis-py style arguments it reads RConn(host="127.0.0.1", port=6379, db=0);
# url= takes any rcache URL (here $RCACHE_URL, else the in-process memory://).
rconn = RConn(url=os.environ.get("RCACHE_URL") or "memory://")

# cache.redis(key, f, time_expire) next to web2py's cache.ram and cache.disk.
# with_lock: one process computes a missing value while the others wait for it.
cache.redis = RedisCache(redis_conn=rconn, debug=True, with_lock=True)  # noqa: F821  (cache comes from web2py)

# Sessions in Redis: a hash per session, expiring 1 hour after its last use.
sessiondb = RedisSession(redis_conn=rconn, session_expiry=3600)
session.connect(request, response, db=sessiondb)  # noqa: F821  (session, request, response: web2py's)
