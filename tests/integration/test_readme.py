"""README.md's command lines, run as written against the real ``edgemq`` command, so the README cannot drift.

Every line of a ```sh block is either a command these tests know how to run or the JSON answer
shown under the command above it; any other line fails ``test_every_readme_sh_line_is_covered``.
Addresses are moved to the ports the broker really bound (it binds port 0 and logs them).

- ``curl`` and ``mosquitto_sub``/``mosquitto_pub`` lines run, section by section, against one
  broker per section, in README order, after the quick start's lines (the examples continue
  from it). Each curl answer must be HTTP 2xx JSON with code 0 (or the Prometheus text), and
  equal to the answer the README shows under it, apart from values that change by themselves
  (``VOLATILE``).
- ``edgemq ...`` lines run with ``python -m broker`` (what the console script calls).
- ``.venv/bin/python scripts/bench.py ...`` lines run the benchmark's argument handling with
  every scenario stubbed out (``tests/bench`` runs the scenarios themselves).
- ``./scripts/run`` and ``./scripts/test`` install into .venv: they must exist and be executable.
- Lines matching ``NOT_RUN`` (creating a virtualenv, ``pip install``) are not run.

readme_lines.py reads the blocks into commands and answers; readme_runs.py runs them.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tomllib

import httpx
import pytest

from admin_api.codes import ResultCode
from broker.config.source import ConfigSource
from tests.helpers import WAIT
from tests.integration.readme_lines import (
    API_SECTIONS,
    LINES,
    PROBLEMS,
    README,
    ROOT,
    Line,
    line_params,
    lines_of,
    option,
)
from tests.integration.readme_runs import SectionRun, edgemq, edgemq_env, needs, stop

QUICK_START = "Quick start"


def test_every_readme_sh_line_is_covered() -> None:
    """Every line of README.md's sh blocks is a command these tests run, or the answer under one."""
    assert not PROBLEMS, (
        "README lines no test runs (teach tests/integration/readme_lines.py and test_readme.py):\n"
        + "\n".join(PROBLEMS)
    )
    for kind in ("install", "curl", "mqtt", "edgemq", "bench"):
        assert lines_of(kind), f"no {kind} line found: has the README's sh block syntax changed?"


@pytest.mark.parametrize("line", line_params("install"))
def test_readme_install_line_is_an_executable_script(line: Line) -> None:
    """./scripts/run and ./scripts/test (not run: they install) exist and are executable."""
    script = ROOT / line.argv[0]
    assert script.is_file(), f"{line}: no such script"
    assert os.access(script, os.X_OK), f"{line}: not executable"


@pytest.mark.anyio
@pytest.mark.parametrize("section", API_SECTIONS)
async def test_readme_section_runs_and_answers_as_shown(section: str) -> None:
    """A section's curl and mosquitto lines run in order after the quick start's, each answering as shown."""
    lines = [line for line in LINES if line.kind in ("curl", "mqtt") and line.section in (QUICK_START, section)]
    needs("curl", *sorted({line.argv[0] for line in lines if line.kind == "mqtt"}), "stdbuf")
    async with edgemq("--mqtt-port", "0", "--http-port", "0") as broker:
        run = SectionRun(broker)
        try:
            for line in lines:
                await run.run(line)
        finally:
            await run.close()
        assert await broker.finish() == 0


@pytest.mark.anyio
@pytest.mark.parametrize("line", line_params("edgemq"))
async def test_readme_edgemq_line_runs(line: Line) -> None:
    """An `edgemq ...` line runs as the real command: start serves and stops with 0, the others exit 0."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["edgemq"] == "broker.cli:main"  # what python -m broker runs
    args = line.argv[1:]
    command = args[0] if args and not args[0].startswith("-") else "start"
    if args == ["--version"]:
        command = "--version"
    if command == "start":
        if "--conf" in args:
            listeners = dict(ConfigSource(path=ROOT / option(args, "--conf")).load().listeners.configured())
            assert set(listeners) == {"tcp"}, f"{line}: move the {set(listeners) - {'tcp'}} listeners to free ports"
        async with edgemq(*args, "--mqtt-port", "0", "--http-port", "0") as broker:
            async with httpx.AsyncClient(timeout=WAIT) as client:
                assert (await client.get(f"{broker.api}/readyz")).status_code == 200
            assert await broker.finish() == 0
        return
    stdin = b"readme-secret\n" if command == "hash-password" else b""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, cwd=ROOT, env=edgemq_env(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(WAIT * 2):
            out, err = await process.communicate(stdin)
    finally:
        await stop(process)
    assert process.returncode == 0, f"{line}: exit code {process.returncode}: {err.decode()}"
    if command == "check-config":
        assert out.decode().startswith(f"{args[1]}: ok ("), f"{line}: {out.decode()}"
    elif command == "hash-password":
        assert out.decode().startswith("$argon2id$"), f"{line}: {out.decode()}"
    elif command == "--version":
        assert re.fullmatch(r"edgemq \S+\n", out.decode()), f"{line}: {out.decode()}"
    else:
        pytest.fail(f"{line}: no check for `edgemq {command}` yet")


BENCH_STUB = """
import importlib.util, sys
sys.path.insert(0, "scripts")
spec = importlib.util.spec_from_file_location("bench", "scripts/bench.py")
bench = sys.modules["bench"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
bench.SCENARIOS = {name: (lambda args, name=name: print(name) or []) for name in bench.SCENARIOS}
raise SystemExit(bench.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("line", line_params("bench"))
def test_readme_bench_line_parses(line: Line) -> None:
    """scripts/bench.py accepts the line's flags and picks its scenarios (each stubbed: tests/bench runs them)."""
    completed = subprocess.run(
        [sys.executable, "-c", BENCH_STUB, *line.argv[2:]],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT * 4, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, f"{line}: {completed.stderr}"
    chosen = [option(line.argv[i:], "--scenario") for i, word in enumerate(line.argv) if word == "--scenario"]
    ran = completed.stdout.split()
    assert ran == (chosen or sorted(ran)), f"{line}: ran {ran}"
    assert chosen or len(ran) > 1, f"{line}: ran {ran}, not every scenario"


def test_readme_result_code_table_lists_every_code() -> None:
    """The README's result code table has one row per code of admin_api/codes.py."""
    section = README.read_text(encoding="utf-8").split("\n## Admin API result codes\n", 1)[1].split("\n## ", 1)[0]
    rows = [int(match[1]) for match in re.finditer(r"^\| (\d+) \|", section, re.MULTILINE)]
    assert rows == sorted(int(code) for code in ResultCode)


def test_readme_links_point_to_files_in_the_repository() -> None:
    """Every relative link of README.md names a file that ships with the repository."""
    targets = re.findall(r"\]\(([^)#\s]+)\)", README.read_text(encoding="utf-8"))
    local = [target for target in targets if "://" not in target]
    assert local, "no relative link found"
    missing = [t for t in local if not ((ROOT / t).resolve().is_relative_to(ROOT) and (ROOT / t).exists())]
    assert not missing, f"README links to files the repository does not hold: {missing}"
