"""Remote-method markers and the indirection hook the rpc layer plugs into.

``@remotable`` marks an instance method, ``@remotable_classmethod`` a class
method, as callable on another service. Their signatures are part of the
class's fingerprint. When the class's registry has an indirection set
(:attr:`rollsafe.Registry.indirection`), a call goes through it (to a
conductor, say); otherwise it runs here. The core only defines the hook;
transports live in a later layer and never the other way round.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import contextvars

__all__ = ["Indirection", "RemoteMethod", "remotable", "remotable_classmethod"]

F = TypeVar("F", bound=Callable[..., Any])


class Indirection(Protocol):
    """Where remote calls go when a service must not run them itself."""

    def object_action(self, obj: Any, method: str, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        """Run instance method ``method`` of ``obj`` elsewhere; return its
        result (and apply the object's changes to ``obj``)."""

    def object_class_action(self, cls: type, method: str, args: tuple[Any, ...],
                            kwargs: dict[str, Any]) -> Any:
        """Run class method ``method`` of ``cls`` elsewhere."""


class RemoteMethod:
    """What a remote marker records about one method."""

    __slots__ = ("func", "kind", "name")

    def __init__(self, name: str, kind: str, func: Callable[..., Any]) -> None:
        self.name = name
        self.kind = kind
        self.func = func

    def canonical(self) -> dict[str, Any]:
        """The method's kind and signature as plain data (for fingerprints)."""
        import inspect  # only fingerprints need it; it is slow to import

        sig = inspect.signature(self.func)
        params = []
        for param in list(sig.parameters.values())[1:]:  # skip self / cls
            entry: dict[str, Any] = {"name": param.name, "kind": param.kind.name}
            if param.default is not inspect.Parameter.empty:
                entry["default"] = _canonical_default(param.default)
            if param.annotation is not inspect.Parameter.empty:
                entry["annotation"] = _annotation_text(param.annotation)
            params.append(entry)
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "params": params}
        if sig.return_annotation is not inspect.Signature.empty:
            out["returns"] = _annotation_text(sig.return_annotation)
        return out


def _annotation_text(annotation: Any) -> str:
    import inspect

    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return " ".join(text.replace("typing.", "").split())


def _canonical_default(value: Any) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (tuple, list, frozenset, set, dict):
        import json

        try:  # plain containers of plain values: their content counts
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            return {"type": type(value).__name__,
                    "value": json.loads(json.dumps(items, sort_keys=True))}
        except (TypeError, ValueError):
            pass
    return {"type": type(value).__name__}


def remotable(func: F) -> F:
    """Mark an instance method as remotable."""

    @functools.wraps(func)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        indirection = type(self)._rs_registry.indirection
        if indirection is not None and not _local.get():
            return indirection.object_action(self, func.__name__, args, kwargs)
        return func(self, *args, **kwargs)

    call.__rollsafe_remote__ = RemoteMethod(func.__name__, "instance", func)  # type: ignore
    return call  # type: ignore[return-value]


if TYPE_CHECKING:
    # Type checkers special-case ``classmethod`` itself: seen as it, a
    # decorated method is typed as the class method it is at run time
    # (``Job.create("x")`` binds ``cls``), which no decorator signature says.
    remotable_classmethod = classmethod
else:
    def remotable_classmethod(func: F) -> F:
        """Mark a class method as remotable (use instead of ``@classmethod``)."""

        @functools.wraps(func)
        def call(cls: Any, *args: Any, **kwargs: Any) -> Any:
            indirection = cls._rs_registry.indirection
            if indirection is not None and not _local.get():
                return indirection.object_class_action(cls, func.__name__, args, kwargs)
            return func(cls, *args, **kwargs)

        call.__rollsafe_remote__ = RemoteMethod(func.__name__, "class", func)
        return classmethod(call)


class _LocalFlag:
    """Set while a service runs remote calls for others, so that a conductor
    executing a call does not send it away again."""

    def __init__(self) -> None:
        import contextvars

        self._var: contextvars.ContextVar[bool] = contextvars.ContextVar(
            "rollsafe_run_local", default=False)

    def get(self) -> bool:
        return self._var.get()

    def set(self, value: bool) -> Any:
        return self._var.set(value)

    def reset(self, token: Any) -> None:
        self._var.reset(token)


_local = _LocalFlag()


def collect_remote_methods(namespace: dict[str, Any]) -> dict[str, RemoteMethod]:
    """The remote methods declared in a class body."""
    found = {}
    for value in namespace.values():
        target = value.__func__ if isinstance(value, classmethod) else value
        marker = getattr(target, "__rollsafe_remote__", None)
        if isinstance(marker, RemoteMethod):
            found[marker.name] = marker
    return found
