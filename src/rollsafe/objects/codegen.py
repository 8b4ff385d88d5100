"""Generated hot paths for one object class.

For each class rollsafe writes Python source once (``__init__``, a setter per
field, the current-version encoder and decoder, and change tracking), with
the common checks inlined, compiles it, and registers the source in
:mod:`linecache` so tracebacks and debuggers show the generated lines.
Everything unusual falls back to the field type's methods.
"""

from __future__ import annotations

import datetime as _dt
import linecache
import operator
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rollsafe.errors import DecodeError, MissingFieldError, ReadOnlyFieldError
from rollsafe.objects.fields import MISSING, Field
from rollsafe.objects.types import (
    DictType,
    FieldType,
    ListType,
    NullableType,
    ObjectType,
    SetType,
)

if TYPE_CHECKING:
    from rollsafe.objects.base import ClassInfo, VersionedObject

__all__ = ["install", "iter_objects"]


def iter_objects(ftype: FieldType, value: Any) -> Iterator[VersionedObject]:
    """Every object held in ``value`` (of type ``ftype``), one level deep."""
    if value is None:
        return
    if isinstance(ftype, NullableType):
        yield from iter_objects(ftype.inner, value)
    elif isinstance(ftype, ObjectType):
        yield value
    elif isinstance(ftype, ListType | SetType):
        for item in value:
            yield from iter_objects(ftype.item, item)
    elif isinstance(ftype, DictType):
        for item in value.values():
            yield from iter_objects(ftype.item, item)


def _unknown_field(data: dict[Any, Any], known: frozenset[str], path: str, what: str) -> None:
    for key in data:
        if key not in known:
            where = f"{path}.{key}" if type(key) is str else path
            raise DecodeError(where, f"unknown field {key!r} for {what}")


def _is_object(ftype: FieldType) -> bool:
    return isinstance(ftype.inner if isinstance(ftype, NullableType) else ftype, ObjectType)


def install(info: ClassInfo) -> None:
    """Generate and attach the hot paths of ``info.cls``."""
    cls = info.cls
    cname = info.name
    fields = info.fields
    g: dict[str, Any] = {
        "_M": MISSING,
        "_UUID": uuid.UUID,
        "_datetime": _dt.datetime,
        "_timezone": _dt.timezone,
        "_new": object.__new__,
        "_cls": cls,
        "_ALL": frozenset(fields),
        "_KNOWN": frozenset(fields),
        "_MissingFieldError": MissingFieldError,
        "_ReadOnlyFieldError": ReadOnlyFieldError,
        "_DecodeError": DecodeError,
        "_unknown_field": _unknown_field,
        "_iter_objects": iter_objects,
        "_WHAT": f"{cname} {info.current.number}",
    }
    for name, fld in fields.items():
        g[f"_t_{name}"] = fld.ftype
        g[f"_f_{name}"] = fld
        g[f"_d_{name}"] = fld.default
    src: list[str] = []
    src += _init_source(cname, fields)
    src += _setter_source(cname, fields)
    src += _encode_source(fields)
    src += _decode_source(fields)
    src += _tracking_source(fields)
    text = "\n".join(src) + "\n"
    filename = f"<rollsafe generated {cls.__module__}.{cls.__qualname__}>"
    code = compile(text, filename, "exec")
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(code, g)

    cls.__init__ = g["__init__"]  # type: ignore[misc]
    cls.__init__.__qualname__ = f"{cls.__qualname__}.__init__"
    for name, fld in fields.items():
        getter = operator.attrgetter(f"_v_{name}")
        setter = g[f"_set_{name}"]
        doc = f"{fld.ftype.describe()}{' (read-only)' if fld.read_only else ''}"
        setattr(cls, name, property(getter, setter, None, doc))
    for method in ("_rs_encode", "_rs_values", "_rs_what_changed", "_rs_has_changes",
                   "_rs_snapshot", "_rs_reset"):
        setattr(cls, method, g[method])
    info.fast_decode = g["_rs_fast_decode"]


def _init_source(cname: str, fields: dict[str, Field]) -> list[str]:
    params = ", ".join(f"{n}=_M" for n in fields)
    lines = [f"def __init__(self, *, {params}):" if fields else "def __init__(self):"]
    for name, fld in fields.items():
        path = repr(f"{cname}.{name}")
        lines.append(f"    if {name} is _M:")
        if not fld.has_default:
            lines.append(f"        raise _MissingFieldError({path}, "
                         "'required field not given (it has no default)')")
        elif fld.default_factory is None and (fld.default is None or not fld.ftype.mutable):
            lines.append(f"        {name} = _d_{name}")
        else:
            lines.append(f"        {name} = _f_{name}.make_default({path})")
        check = fld.ftype.fast_check(name)
        lines.append(f"    elif not {check}:" if check else "    else:")
        lines.append(f"        {name} = _t_{name}.validate({name}, {path})")
        lines.append(f"    self._v_{name} = {name}")
    lines.append("    self._rs_changed = set(_ALL)")
    lines.append("    self._rs_baseline = None")
    return lines


def _setter_source(cname: str, fields: dict[str, Field]) -> list[str]:
    lines = []
    for name, fld in fields.items():
        path = repr(f"{cname}.{name}")
        lines.append(f"def _set_{name}(self, v):")
        if fld.read_only:
            lines.append(f"    raise _ReadOnlyFieldError({path}, "
                         "'read-only field: set it when the object is built')")
            continue
        check = fld.ftype.fast_check("v")
        if check:
            lines.append(f"    if not {check}:")
            lines.append(f"        v = _t_{name}.validate(v, {path})")
        else:
            lines.append(f"    v = _t_{name}.validate(v, {path})")
        lines.append(f"    self._v_{name} = v")
        lines.append(f"    self._rs_changed.add({name!r})")
    return lines


def _encode_source(fields: dict[str, Field]) -> list[str]:
    lines = ["def _rs_encode(self, path, nested):", "    return {"]
    for name, fld in fields.items():
        var = f"self._v_{name}"
        expr = fld.ftype.to_prim_src(var)
        if expr is None:
            expr = f"_t_{name}.to_prim({var}, path + {'.' + name!r}, nested)"
        lines.append(f"        {name!r}: {expr},")
    lines.append("    }")
    lines.append("def _rs_values(self):")
    lines.append("    return {" + ", ".join(f"{n!r}: self._v_{n}" for n in fields) + "}")
    return lines


def _decode_source(fields: dict[str, Field]) -> list[str]:
    lines = ["def _rs_fast_decode(data, path, limits, depth):", "    o = _new(_cls)",
             "    n = 0", "    get = data.get"]
    for name, fld in fields.items():
        sub = f"path + {'.' + name!r}"
        lines.append(f"    v = get({name!r}, _M)")
        lines.append("    if v is _M:")
        if not fld.has_default:
            lines.append(f"        raise _DecodeError({sub}, 'required field missing from ' "
                         "+ _WHAT)")
        elif fld.default_factory is None and (fld.default is None or not fld.ftype.mutable):
            lines.append(f"        v = _d_{name}")
        else:
            lines.append(f"        v = _f_{name}.make_default({sub})")
        lines.append("    else:")
        lines.append("        n += 1")
        check = fld.ftype.fast_decode_check("v")
        if check:
            lines.append(f"        if not {check}:")
            lines.append(f"            v = _t_{name}.from_prim(v, {sub}, limits, depth)")
        else:
            lines.append(f"        v = _t_{name}.from_prim(v, {sub}, limits, depth)")
        lines.append(f"    o._v_{name} = v")
    lines.append("    if n != len(data):")
    lines.append("        _unknown_field(data, _KNOWN, path, _WHAT)")
    lines.append("    return o")
    return lines


def _changed_expr(name: str, fld: Field, base: str) -> str:
    var = f"self._v_{name}"
    if isinstance(fld.ftype, ObjectType):
        return f"({var} is not {base} or {var}._rs_has_changes())"
    expr = fld.ftype.changed_src(var, base)
    return expr if expr is not None else f"_t_{name}.changed({var}, {base})"


def _tracking_source(fields: dict[str, Field]) -> list[str]:
    mutable = [(n, f) for n, f in fields.items() if f.ftype.mutable]
    lines = ["def _rs_snapshot(self):"]
    if not mutable:
        lines.append("    return None")
    else:
        snaps = []
        for name, fld in mutable:
            var = f"self._v_{name}"
            if _is_object(fld.ftype):
                snaps.append(var)
            else:
                expr = fld.ftype.snapshot_src(var)
                if expr is not None and isinstance(fld.ftype, NullableType):
                    expr = f"(None if {var} is None else {expr})"
                snaps.append(expr if expr is not None else f"_t_{name}.snapshot({var})")
        lines.append("    return (" + ", ".join(snaps) + ",)")

    lines += ["def _rs_what_changed(self):", "    ch = set(self._rs_changed)"]
    if mutable:
        lines += ["    b = self._rs_baseline", "    if b is not None:"]
        for i, (name, fld) in enumerate(mutable):
            lines.append(f"        if {name!r} not in ch and {_changed_expr(name, fld, f'b[{i}]')}:")
            lines.append(f"            ch.add({name!r})")
    lines.append("    return ch")

    lines += ["def _rs_has_changes(self):", "    if self._rs_changed:", "        return True"]
    if mutable:
        lines += ["    b = self._rs_baseline", "    if b is None:", "        return False"]
        for i, (name, fld) in enumerate(mutable):
            lines.append(f"    if {_changed_expr(name, fld, f'b[{i}]')}:")
            lines.append("        return True")
    lines.append("    return False")

    lines += ["def _rs_reset(self, recursive):"]
    holders = [(n, f) for n, f in mutable if any(True for _ in f.ftype.object_classes())]
    if holders:
        lines.append("    if recursive:")
        for name, _fld in holders:
            lines.append(f"        for child in _iter_objects(_t_{name}, self._v_{name}):")
            lines.append("            child._rs_reset(True)")
    lines += ["    self._rs_changed = set()", "    self._rs_baseline = self._rs_snapshot()"]
    return lines
