"""web2py's gluon/contrib/redis_session.py, served by rcache: copy this file over
web2py's own. It needs the rcache package importable (installed, or its
bindings/python directory on sys.path) and librcache.so (found by the
package, or named by the RCACHE_LIB environment variable)."""

from rcache.web2py.redis_session import *  # noqa: F401,F403
from rcache.web2py.redis_session import __all__  # noqa: F401
