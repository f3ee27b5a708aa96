"""README.md's ```sh blocks read into commands, each with the answer shown under it (for test_readme.py)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

INSTALL_SCRIPT = re.compile(r"\./scripts/(run|test)")  # they install into .venv: checked, not run
# lines that install or need placeholders filled in: not run (matched against the words of the line)
NOT_RUN = [
    re.compile(r"python3 -m venv \.venv && \. \.venv/bin/activate"),
    re.compile(r"pip install \S.*"),
]
BENCH = [".venv/bin/python", "scripts/bench.py"]
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1"}


@dataclass
class Line:
    """One command of a ```sh block, with the answer the README shows under it (if any)."""

    number: int
    section: str
    text: str
    argv: list[str]
    answer: Any = None

    @property
    def kind(self) -> str | None:
        """How the tests run it, or None when they cannot."""
        argv = self.argv
        if any(pattern.fullmatch(" ".join(argv)) for pattern in NOT_RUN):
            return "not run"
        if SHELL_OPERATORS & set(argv) or "&" in argv[:-1]:
            return None
        if argv[-1] == "&":
            return "mqtt" if argv[0] == "mosquitto_sub" else None
        if len(argv) == 1 and INSTALL_SCRIPT.fullmatch(argv[0]):
            return "install"
        if argv[0] == "curl":
            return "curl"
        if argv[0] == "mosquitto_pub":
            return "mqtt"
        if argv[0] == "edgemq":
            return "edgemq"
        if argv[:2] == BENCH:
            return "bench"
        return None

    def __str__(self) -> str:
        return f"README.md:{self.number}: {self.text}"


def read_readme(text: str) -> tuple[list[Line], list[str]]:
    """The commands of every ```sh block, and the lines that are neither a command nor an answer."""
    lines: list[Line] = []
    problems: list[str] = []
    section, fence, pending, start = "", None, "", 0
    block: list[Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if fence is None:
            if raw.startswith("## "):
                section = raw[3:].strip()
            elif raw.startswith("```"):
                fence, block = raw.strip(), []
            continue
        if raw.startswith("```"):
            if pending:
                problems.append(f"README.md:{start}: continued past the end of its block: {pending}")
            fence, pending = None, ""
            continue
        if fence != "```sh" or not raw.strip():
            continue
        if not pending:
            start = number
        joined = f"{pending} {raw.strip()}".strip()
        if joined.endswith("\\"):
            pending = joined[:-1].strip()
            continue
        pending = ""
        if joined.startswith(("{", "[")):
            previous = block[-1] if block else None
            try:
                answer = json.loads(joined)
            except ValueError:
                problems.append(f"README.md:{start}: an answer that is not JSON: {joined}")
                continue
            if previous is None or previous.answer is not None:
                problems.append(f"README.md:{start}: an answer under no command: {joined}")
                continue
            previous.answer = answer
            continue
        try:
            argv = shlex.split(joined, comments=True)
        except ValueError:
            problems.append(f"README.md:{start}: not a shell command: {joined}")
            continue
        if argv:
            line = Line(start, section, joined, argv)
            block.append(line)
            lines.append(line)
            if line.kind is None:
                problems.append(f"{line} (no test knows how to run this line)")
    return lines, problems


LINES, PROBLEMS = read_readme(README.read_text(encoding="utf-8"))


def lines_of(kind: str) -> list[Line]:
    return [line for line in LINES if line.kind == kind]


def line_params(kind: str) -> list[Any]:
    return [pytest.param(line, id=f"line{line.number}") for line in lines_of(kind)]


API_SECTIONS = list(dict.fromkeys(line.section for line in LINES if line.kind in ("curl", "mqtt")))


def option(argv: list[str], name: str) -> str:
    """The value after ``name`` in ``argv``."""
    assert name in argv, f"{name} missing in {argv}"
    return argv[argv.index(name) + 1]
