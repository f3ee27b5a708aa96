"""What the installed amqtt defines on its classes, read from its code (for the seam scan and test)."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Callable
from functools import cache
from typing import Any


def import_object(path: str) -> Any:
    """The object a dotted path names: the longest importable module, then its attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(f"no module in {path!r}")


def amqtt_classes(cls: type) -> list[type]:
    """The classes of ``cls``'s MRO that amqtt defines (edgemq's, typing's and object's left out)."""
    return [c for c in cls.__mro__ if c.__module__.split(".")[0] == "amqtt"]


@cache
def assigned_to_self(function: Callable[..., Any]) -> dict[str, str | None]:
    """Attributes a function sets on ``self`` (read from its source), each with the name of the
    class it gets where the code says (``self.x: T = ...`` or ``self.x = T(...)``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return {}
    names: dict[str, str | None] = {}
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                value = node.annotation if isinstance(node, ast.AnnAssign) else getattr(node, "value", None)
                names[target.attr] = names.get(target.attr) or _head(value)
    return names


def _head(node: ast.expr | None) -> str | None:
    """The class name an annotation or constructor call starts with: T in T | None, T[...], T(...)."""
    while isinstance(node, ast.BinOp | ast.Subscript | ast.Call):
        node = (
            node.left if isinstance(node, ast.BinOp) else node.value if isinstance(node, ast.Subscript) else node.func
        )
    return node.id if isinstance(node, ast.Name) else None


def instance_attributes(cls: type) -> frozenset[str]:
    """Attributes amqtt's classes in ``cls``'s MRO declare (annotations) or set on ``self`` in a method."""
    names: set[str] = set()
    for amqtt_class in amqtt_classes(cls):
        names.update(vars(amqtt_class).get("__annotations__", {}))
        for value in vars(amqtt_class).values():
            function = getattr(value, "__func__", getattr(value, "fget", value))
            if inspect.isfunction(function):
                names.update(assigned_to_self(function))
    return frozenset(names)


def members(cls: type) -> frozenset[str]:
    """Every name amqtt defines on ``cls``: class attributes and methods, and instance attributes."""
    names = {
        name
        for c in amqtt_classes(cls)
        for name, value in vars(c).items()
        if not (name.startswith("__") and name.endswith("__")) or inspect.isfunction(value)
    }  # dunders only as methods: __dict__, __slots__, __module__ are Python's
    return frozenset(names | instance_attributes(cls))


def static_member(cls: type, name: str) -> Any:
    """amqtt's own definition of ``name`` on ``cls`` (classmethods unwrapped), or None."""
    for amqtt_class in amqtt_classes(cls):
        if name in vars(amqtt_class):
            value = vars(amqtt_class)[name]
            return value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
    return None


def mro_order(c: type) -> tuple[int, str, str]:
    """A sort key: the most basic class first, then by name."""
    return (len(c.__mro__), c.__module__, c.__qualname__)


def attribute_class(owner: type, name: str) -> type | None:
    """The class amqtt gives ``owner``'s attribute ``name`` where its code says (see ``assigned_to_self``)."""
    for amqtt_class in amqtt_classes(owner):
        for value in vars(amqtt_class).values():
            if inspect.isfunction(value):
                typed = value.__globals__.get(assigned_to_self(value).get(name) or "")
                if isinstance(typed, type):
                    return typed
    return None
