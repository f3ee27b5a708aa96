"""Where each key of a HOCON file is, and which files it includes (pyhocon keeps neither).

``scan(path)`` walks the file as HOCON's syntax lays it out: keys (dotted or quoted),
objects, lists and their elements, values, comments and ``include`` directives. It records
the file and line of every key path (list elements by index: ``rules.2.permit``), so errors
can point at the occurrence that holds a bad value, and follows each include into its file,
reporting one that is missing or unreadable (pyhocon skips those silently). pyhocon remains
the parser of values; this walk only locates. Text it cannot follow ends the walk of that file;
an ``include`` after that point is a problem (it could not be checked).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Located", "scan"]

_TOKEN = re.compile(
    r"""
    (?P<newline>\n)
    | (?P<space>[ \t\r\ufeff]+)
    | (?P<comment>(?:\#|//)[^\n]*)
    | (?P<triple>\"\"\"(?:.|\n)*?\"*\"\"\")
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<substitution>\$\{[^}]*\})
    | (?P<punct>\+=|[{}\[\],=:()])
    | (?P<word>(?:[^\s"{}\[\],=:#$()+/]|\+(?!=)|\$(?!\{)|/(?!/))+)
    """,
    re.VERBOSE,
)
_INCLUDE_KINDS = ("file", "url", "classpath", "package")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    line: int


@dataclass
class Located:
    """What a scan found: key path -> (file, line), and the include problems."""

    lines: dict[tuple[str, ...], tuple[Path, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def rank(self, file: Path) -> int:
        """The order in which the scan entered ``file`` (the main file first)."""
        files = list(dict.fromkeys(found for found, _ in self.lines.values()))
        return files.index(file) if file in files else len(files)

    def find(self, path: tuple[str, ...]) -> tuple[Path, int] | None:
        """Where ``path`` or, failing that, its nearest located parent is."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None


class _StopScan(Exception):
    """Text the walk cannot follow."""


def _tokens(text: str) -> Iterator[_Token]:
    line, position = 1, 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        kind = (match.lastgroup or "") if match is not None else "unknown"
        value = match[0] if match is not None else text[position]
        if kind not in ("space", "comment"):
            yield _Token(kind, value, line)
        line += value.count("\n")
        position += len(value)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _key_parts(token: _Token) -> list[str]:
    if token.kind == "string":
        return [_unquote(token.text)]
    return [part for part in token.text.split(".") if part]


class _Walk:
    """One file's tokens, walked with a cursor."""

    def __init__(self, scanner: _Scanner, path: Path, tokens: list[_Token]) -> None:
        self.scanner, self.path, self.tokens, self.at = scanner, path, tokens, 0
        self.statement = 0  # where the key or include being walked starts

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise _StopScan
        self.at += 1
        return token

    def skip_separators(self) -> None:
        while (token := self.peek()) is not None and (token.kind == "newline" or token.text == ","):
            self.at += 1

    def skip_newlines(self) -> None:
        while (token := self.peek()) is not None and token.kind == "newline":
            self.at += 1

    def unchecked_include(self) -> str | None:
        """A problem naming the first include from the statement the walk stopped in onwards."""
        rest = self.tokens[self.statement :]
        for token in rest:
            if token.kind == "word" and token.text.lower() == "include":
                return (
                    f"{self.path}:{rest[0].line}: edgemq cannot follow the text here, "
                    f"so the include on line {token.line} cannot be checked"
                )
        return None

    def object_body(self, prefix: tuple[str, ...], closing: str | None) -> None:
        while True:
            self.skip_separators()
            token = self.peek()
            if token is None:
                if closing is not None:
                    raise _StopScan
                return
            if token.text == closing:
                self.at += 1
                return
            self.statement = self.at
            if token.kind == "word" and token.text.lower() == "include":
                self.at += 1
                self.include(prefix, token.line)
                continue
            self.field(prefix)

    def field(self, prefix: tuple[str, ...]) -> None:
        first = self.take()
        if first.kind not in ("word", "string"):
            raise _StopScan
        path = prefix + tuple(_key_parts(first))
        while (token := self.peek()) is not None and token.kind in ("word", "string"):
            path += tuple(_key_parts(self.take()))  # a key written in parts: "a".b
        lines = self.scanner.located.lines
        for end in range(len(prefix) + 1, len(path)):
            lines.setdefault(path[:end], (self.path, first.line))
        lines[path] = (self.path, first.line)
        self.skip_newlines()  # pyhocon takes "key" and "{" (or "=") on separate lines
        token = self.take()
        if token.text in ("=", ":", "+="):
            self.skip_newlines()
            self.value(path)
        elif token.text == "{":
            self.object_body(path, "}")
        else:
            raise _StopScan

    def value(self, path: tuple[str, ...]) -> None:
        """One value, with whatever is concatenated to it on the same line."""
        while (token := self.peek()) is not None and token.kind != "newline" and token.text not in (",", "}", "]"):
            self.at += 1
            if token.kind == "unknown":
                raise _StopScan
            if token.text == "{":
                self.object_body(path, "}")
            elif token.text == "[":
                self.list_body(path)
            elif token.kind == "word" and token.text.lower() == "include":
                self.include(path, token.line)

    def list_body(self, path: tuple[str, ...]) -> None:
        index = 0
        while True:
            self.skip_separators()
            token = self.peek()
            if token is None:
                raise _StopScan
            if token.text == "]":
                self.at += 1
                return
            self.statement = self.at
            element = (*path, str(index))
            self.scanner.located.lines[element] = (self.path, token.line)
            self.value(element)
            index += 1

    def include(self, prefix: tuple[str, ...], line: int) -> None:
        token = self.take()
        required = token.text == "required"
        if required:
            self.expect("(")
            token = self.take()
        kind = "file"
        if token.kind == "word" and token.text in _INCLUDE_KINDS:
            kind = token.text
            self.expect("(")
            token = self.take()
            self.expect(")")
        if required:
            self.expect(")")
        if token.kind != "string":
            raise _StopScan
        self.scanner.include(self.path, line, kind, _unquote(token.text), prefix)

    def expect(self, text: str) -> None:
        if self.take().text != text:
            raise _StopScan


class _Scanner:
    def __init__(self) -> None:
        self.located = Located()
        self.open_files: list[Path] = []

    def walk(self, path: Path, text: str, prefix: tuple[str, ...]) -> None:
        self.open_files.append(path.resolve())
        walk = _Walk(self, path, list(_tokens(text)))
        try:
            walk.skip_separators()
            first = walk.peek()
            if first is not None and first.text == "[":
                walk.take()
                walk.list_body(prefix)
            elif first is not None and first.text == "{":
                walk.take()
                walk.object_body(prefix, "}")
            else:
                walk.object_body(prefix, None)
        except _StopScan:
            if (problem := walk.unchecked_include()) is not None:
                self.located.problems.append(problem)
        finally:
            self.open_files.pop()

    def include(self, source: Path, line: int, kind: str, name: str, prefix: tuple[str, ...]) -> None:
        where = f'{source}:{line}: include "{name}"'
        if kind != "file" or re.match(r"^(https?|file)://", name):
            self.located.problems.append(f"{where}: only files can be included")
            return
        target = Path(os.path.join(source.parent, name))
        targets = (
            [Path(p) for p in sorted(glob.glob(str(target), recursive=True))]
            if "*" in name or "?" in name
            else [target]
        )
        if not targets:
            self.located.problems.append(f"{where}: no file matches ({target})")
        for each in targets:
            self.include_file(where, each, prefix)

    def include_file(self, where: str, target: Path, prefix: tuple[str, ...]) -> None:
        if target.resolve() in self.open_files:
            self.located.problems.append(f"{where}: includes itself ({target})")
            return
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.located.problems.append(f"{where}: no such file ({target})")
            return
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.located.problems.append(f"{where}: cannot be read ({target}: {reason})")
            return
        self.walk(target, text, prefix)


def scan(path: Path, text: str) -> Located:
    """Key locations of ``text`` (the contents of ``path``) and its includes, and every include
    that is missing, unreadable, circular or not a file."""
    scanner = _Scanner()
    scanner.walk(path, text, ())
    return scanner.located
