"""The amqtt names edgemq's adapter uses, found by reading its code (for tests/unit/test_amqtt_seam.py)."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tests.unit.amqtt_members import attribute_class, import_object, members, mro_order, static_member


class _Class(NamedTuple):
    """A class the adapter defines: its AST, the names its module imports from amqtt."""

    node: ast.ClassDef
    amqtt_names: dict[str, str]


@dataclass
class _Scan:
    """What a scan of the adapter's sources has found, as (kind, dotted name)."""

    classes: dict[str, _Class]
    found: set[tuple[str, str]] = field(default_factory=set)
    attributes: dict[tuple[str, str], type | str | None] = field(default_factory=dict)

    def inherited_base(self, name: str) -> type | None:
        """The amqtt class an adapter class derives from, directly or through adapter classes."""
        cls = self.classes[name]
        for base in cls.node.bases:
            resolved = self.resolve(base, cls.amqtt_names)
            if isinstance(resolved, str):
                resolved = self.inherited_base(resolved)
            if resolved is not None:
                return resolved
        return None

    def mixed_into(self, name: str) -> list[str]:
        """The adapter classes that have ``name`` as a base, if it derives from no amqtt class (a
        mixin: its ``self`` is one of theirs, so it overrides, calls and reads their amqtt base's names)."""
        if self.inherited_base(name) is not None:
            return []
        return [
            n for n, c in self.classes.items() if any(isinstance(b, ast.Name) and b.id == name for b in c.node.bases)
        ]

    def amqtt_base(self, name: str) -> type | None:
        """The amqtt class an adapter class derives from, or (a mixin) the first its users derive from."""
        found = self.inherited_base(name)
        for user in self.mixed_into(name) if found is None else []:
            found = found or self.amqtt_base(user)
        return found

    def own_names(self, name: str) -> set[str]:
        """Names the adapter defines in the class bodies of a class, its adapter bases and (a mixin) its users."""
        return self._defined_names(name).union(*(self._defined_names(user) for user in self.mixed_into(name)))

    def _defined_names(self, name: str) -> set[str]:
        cls = self.classes[name]
        names = {n for item in cls.node.body if (n := _defined(item)) is not None}
        for base in cls.node.bases:
            if isinstance(base, ast.Name) and base.id in self.classes:
                names |= self._defined_names(base.id)
        return names

    def attribute_type(self, name: str, attribute: str) -> type | str | None:
        """The class of an adapter class's attribute: annotated in its class body (or an adapter
        base's), or assigned in its ``__init__`` from something of known class."""
        if (name, attribute) not in self.attributes:
            self.attributes[(name, attribute)] = None  # while looking: an assignment may refer to it
            self.attributes[(name, attribute)] = self._attribute_type(name, attribute)
        return self.attributes[(name, attribute)]

    def _attribute_type(self, name: str, attribute: str) -> type | str | None:
        cls = self.classes[name]
        for item in cls.node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.target.id == attribute:
                return self.resolve(item.annotation, cls.amqtt_names)
        for item in cls.node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == "__init__":
                known = _annotated_names(self, item, name, cls.amqtt_names)
                for node in ast.walk(item):
                    if isinstance(node, ast.AnnAssign) and _is_self_attribute(node.target, attribute):
                        return self.resolve(node.annotation, cls.amqtt_names)
                for target, value in _pairs(item):
                    if _is_self_attribute(target, attribute):
                        return _type_of(self, value, known, cls.amqtt_names)
        bases = [b.id for b in cls.node.bases if isinstance(b, ast.Name) and b.id in self.classes]
        return next((t for b in bases if (t := self.attribute_type(b, attribute)) is not None), None)

    def resolve(self, node: ast.expr | None, amqtt_names: Mapping[str, str]) -> type | str | None:
        """What an annotation or base names: an amqtt class, an adapter class (its name) or None."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node = ast.parse(node.value, mode="eval").body
        if isinstance(node, ast.Subscript):
            return self.resolve(node.value, amqtt_names)
        if isinstance(node, ast.BinOp):  # X | None
            return self.resolve(node.left, amqtt_names) or self.resolve(node.right, amqtt_names)
        if isinstance(node, ast.Name):
            if node.id in amqtt_names:
                found = import_object(amqtt_names[node.id])
                return found if isinstance(found, type) else None
            if node.id in self.classes:
                return node.id
        return None

    def add(self, kind: str, owner: type, name: str) -> None:
        """Record ``owner.name``: a method is a call unless ``kind`` says otherwise, anything else a read."""
        value = inspect.getattr_static(owner, name, None)
        is_function = inspect.isfunction(getattr(value, "__func__", value))
        kind = kind if kind == "override" else ("call" if is_function else "read")
        self.found.add((kind, f"{owner.__module__}.{owner.__qualname__}.{name}"))


def _defined(item: ast.stmt) -> str | None:
    """The name a class-body statement defines (method, nested class, attribute given a value; an
    annotation alone declares the type of an attribute set elsewhere, maybe by amqtt)."""
    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return item.name
    target: ast.expr | None = item.target if isinstance(item, ast.AnnAssign) and item.value is not None else None
    if isinstance(item, ast.Assign) and len(item.targets) == 1:
        target = item.targets[0]
    return target.id if isinstance(target, ast.Name) else None


def _amqtt_imports(tree: ast.Module) -> Iterator[tuple[str, str]]:
    """(local name, dotted amqtt path) of every import from amqtt, guarded ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "amqtt":
            for alias in node.names:
                yield alias.asname or alias.name, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "amqtt":
                    yield alias.asname or alias.name.split(".")[0], alias.name


def scan(sources: Mapping[str, str]) -> set[tuple[str, str]]:
    """Every amqtt name the given modules (name -> source) import, override, call or read.

    Found: imports from amqtt; methods and class attributes an adapter class defines that its
    amqtt base defines too (overrides; a mixin's amqtt base is its users'); ``super().x``;
    ``x.name`` where ``x`` is ``self``, or a parameter, local or adapter-class attribute (annotated
    in the class body, or assigned in ``__init__``) of an amqtt or adapter class, and ``name`` is
    amqtt's and not defined by the adapter class; attributes of imported amqtt classes and modules;
    constructor calls; private attributes of amqtt classes read on any object (also through
    ``getattr(x, "_name")``).
    """
    trees = {module: ast.parse(source) for module, source in sources.items()}
    imports = {module: dict(_amqtt_imports(tree)) for module, tree in trees.items()}
    classes = {
        node.name: _Class(node, imports[module])
        for module, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    result = _Scan(classes)
    result.found |= {("import", path) for paths in imports.values() for path in paths.values()}
    known = {c for paths in imports.values() for p in paths.values() if isinstance(c := import_object(p), type)}
    for name, cls in classes.items():
        base = result.amqtt_base(name)
        if base is None:
            continue
        known.add(base)
        for item in cls.node.body:
            defined = _defined(item)
            if defined is not None and defined in members(base):
                result.add("override", base, defined)
    adapter_names = set().union(*(result.own_names(n) for n in classes))
    private_owners = _owners(sorted(known, key=mro_order), adapter_names, private=True)
    for module, tree in trees.items():
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                child.parent = node  # type: ignore[attr-defined]
        _scan_module(result, tree, imports[module], private_owners)
        # names in strings belong to the module's amqtt base classes, else to the classes it imports
        bases = [b for n in classes if classes[n].amqtt_names is imports[module] and (b := result.amqtt_base(n))]
        imported = [c for p in imports[module].values() if isinstance(c := import_object(p), type)]
        named_owners = _owners(sorted(set(bases), key=mro_order) + sorted(set(imported), key=mro_order), adapter_names)
        for name in _named_in_strings(tree):
            if name in named_owners:
                result.add("read", named_owners[name], name)
    return result.found


def _owners(classes: list[type], adapter_names: set[str], *, private: bool = False) -> dict[str, type]:
    """Names of amqtt classes (private ones only, or all but dunders) that no adapter class
    defines, each with the first of ``classes`` that has it."""
    owners: dict[str, type] = {}
    for cls in classes:
        for name in sorted(members(cls) - adapter_names):
            if not name.startswith("__") and (name.startswith("_") or not private):
                owners.setdefault(name, cls)
    return owners


def _scan_module(
    result: _Scan, tree: ast.Module, amqtt_names: dict[str, str], private_owners: Mapping[str, type]
) -> None:
    scopes: list[tuple[ast.AST, str | None]] = [(tree, None)]
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            scopes += [(f, node.name) for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (node, None) not in scopes:
            scopes.append((node, None))
    for scope, class_name in scopes:
        types_ = _annotated_names(result, scope, class_name, amqtt_names)
        for node in ast.walk(scope):
            _scan_node(result, node, types_, amqtt_names, private_owners)


def _annotated_names(
    result: _Scan, scope: ast.AST, class_name: str | None, amqtt_names: dict[str, str]
) -> dict[str, type | str]:
    """Names of a function whose class is known: self, cls, annotated parameters and locals."""
    known: dict[str, type | str] = {}
    if class_name is not None:
        known["self"] = known["cls"] = class_name
    if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
        arguments = scope.args
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            if (resolved := result.resolve(argument.annotation, amqtt_names)) is not None:
                known.setdefault(argument.arg, resolved)
        for node in ast.walk(scope):
            resolved = result.resolve(node.annotation, amqtt_names) if isinstance(node, ast.AnnAssign) else None
            if resolved is not None and isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                known[node.target.id] = resolved
        for _ in range(2):  # plain assignments from what is known (one pass may need another)
            for target, value in _assignments(scope):
                if target not in known and (typed := _type_of(result, value, known, amqtt_names)) is not None:
                    known[target] = typed
    return known


def _assignments(scope: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    """(name, value) of ``x = v``, ``a, b = v, w`` and ``(x := v)`` in a function."""
    for node in ast.walk(scope):
        if isinstance(node, ast.NamedExpr):
            yield node.target.id, node.value
    yield from ((t.id, v) for t, v in _pairs(scope) if isinstance(t, ast.Name))


def _pairs(scope: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(target, value) of ``t = v`` and ``a, b = v, w`` in a function."""
    for node in ast.walk(scope):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            yield from zip(target.elts, value.elts, strict=True)
        else:
            yield target, value


def _is_self_attribute(node: ast.expr, attribute: str) -> bool:
    """Whether ``node`` is ``self.<attribute>``."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == attribute
        and isinstance(node.value, ast.Name)
        and (node.value.id == "self")
    )


def _type_of(
    result: _Scan, node: ast.expr, known: Mapping[str, type | str], amqtt_names: Mapping[str, str]
) -> type | str | None:
    """The class of an expression where the scan can tell: a known name, an attribute annotated in
    the adapter's class or set by amqtt, or a class called."""
    if isinstance(node, ast.Name):
        return known.get(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return result.resolve(node.func, amqtt_names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # X.build(...) -> Self
        made = result.resolve(node.func.value, amqtt_names)
        method = static_member(made, node.func.attr) if isinstance(made, type) else None
        returns = inspect.signature(method).return_annotation if inspect.isfunction(method) else None
        return made if returns in ("Self", made) or getattr(returns, "__name__", None) == "Self" else None
    if not isinstance(node, ast.Attribute):
        return None
    owner = _type_of(result, node.value, known, amqtt_names)
    if isinstance(owner, str):  # an adapter class: its annotated or assigned attributes, else its amqtt base's
        if (typed := result.attribute_type(owner, node.attr)) is not None:
            return typed
        owner = result.amqtt_base(owner)
    return attribute_class(owner, node.attr) if owner is not None else None


def _scan_node(
    result: _Scan,
    node: ast.AST,
    known: Mapping[str, type | str],
    amqtt_names: Mapping[str, str],
    private_owners: Mapping[str, type],
) -> None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        constructed = result.resolve(node.func, amqtt_names)
        if isinstance(constructed, str) and "__init__" not in result.own_names(constructed):
            constructed = result.amqtt_base(constructed)
        if isinstance(constructed, type) and static_member(constructed, "__init__") is not None:
            result.add("call", constructed, "__init__")
    if not isinstance(node, ast.Attribute):
        return
    name, value = node.attr, node.value
    if isinstance(value, ast.Name) and value.id in amqtt_names and value.id not in known:
        imported = import_object(amqtt_names[value.id])
        if inspect.ismodule(imported):
            result.found.add(("import", f"{amqtt_names[value.id]}.{name}"))
        elif isinstance(imported, type) and name in members(imported):
            result.add("read", imported, name)
        return
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super":
        owner: Any = known.get("self")
        base = result.amqtt_base(owner) if isinstance(owner, str) else None
        if base is not None and name in members(base):
            result.add("call", base, name)
        return
    typed = _type_of(result, value, known, amqtt_names)
    if typed is not None:
        _record_member(result, typed, name)
    elif name in private_owners and not (isinstance(value, ast.Name) and value.id in ("self", "cls")):
        result.add("read", private_owners[name], name)
    if name == "__dict__":  # x.__dict__.update(name=...) sets x's attributes
        parent = getattr(node, "parent", None)
        if typed is not None and isinstance(parent, ast.Call):
            for keyword in parent.keywords:
                if keyword.arg is not None:
                    _record_member(result, typed, keyword.arg)


def _record_member(result: _Scan, typed: type | str, name: str) -> None:
    """Record ``name`` used on an object of class ``typed`` if amqtt defines it (and, for an
    adapter class, the adapter's class does not)."""
    if isinstance(typed, str):
        base = result.amqtt_base(typed)
        if base is not None and name in members(base) and name not in result.own_names(typed):
            result.add("read", base, name)
    elif name in members(typed):
        result.add("read", typed, name)


def _named_in_strings(tree: ast.Module) -> Iterator[str]:
    """Strings that may name attributes: items of tuple, list and set literals, dict keys, and
    ``getattr``/``setattr`` names (``__all__`` left out)."""
    exported = {
        id(n)
        for a in ast.walk(tree)
        if isinstance(a, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in a.targets)
        for n in ast.walk(a)
    }
    for node in ast.walk(tree):
        if id(node) in exported:
            continue
        items: Sequence[ast.expr | None] = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = node.keys
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr"):
            items = node.args[1:2]
        yield from (i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str))
