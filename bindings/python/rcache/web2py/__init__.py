"""Drop-in replacements for web2py's Redis modules, over rcache.

``rcache.web2py.redis_utils``, ``.redis_cache`` and ``.redis_session`` stand
in for ``gluon.contrib.redis_utils``, ``.redis_cache`` and ``.redis_session``:
change the imports, or copy the files of ``rcache/web2py/gluon_contrib/`` over
web2py's. They keep the old names, call signatures and data in Redis, and fix
the old modules' defects; docs/web2py.md is the migration guide.
"""
