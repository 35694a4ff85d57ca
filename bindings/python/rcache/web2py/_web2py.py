"""What the compatibility modules need from web2py itself: the current
application's name and the ``Storage`` row type. Both come from gluon when
it is importable; outside web2py the application must be passed explicitly."""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["application", "Storage"]

try:
    from gluon.storage import Storage
except ImportError:

    class Storage(Dict[str, Any]):  # type: ignore[no-redef]  # web2py's own when importable
        """A dict whose keys are also attributes; a missing one reads as None."""

        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return self.get(name)

        def __setattr__(self, name: str, value: Any) -> None:
            self[name] = value

        def __delattr__(self, name: str) -> None:
            self.pop(name, None)

        def __repr__(self) -> str:
            return f"<Storage {dict.__repr__(self)}>"


def application() -> str:
    """``current.request.application``; RuntimeError outside a web2py request."""
    try:
        from gluon import current
    except ImportError:
        raise RuntimeError("not running inside web2py: pass application='name' explicitly") from None
    request = getattr(current, "request", None)
    name = getattr(request, "application", None)
    if not name:
        raise RuntimeError("current.request.application is not set: pass application='name' explicitly")
    return str(name)
