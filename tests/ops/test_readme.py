"""The README and the pages for operators, testers and dashboard builders: every `mhs` and
`scripts/` command in their sections runs as written (against `mhs serve all`), in order."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from mhs.simulate.plan import HL7_TEMPLATE
from tests.ops.conftest import ROOT, Served

pytestmark = pytest.mark.rabbitmq

README = (ROOT / "README.md").read_text()
SECTIONS = (
    ("docs/operators.md", "## Run it"),
    ("docs/testers.md", "## Inject messages and faults"),
    ("docs/dashboards.md", "## Logs and metrics"),
)


def section_commands() -> list[str]:
    commands: list[str] = []
    for page, heading in SECTIONS:
        text = (ROOT / page).read_text()
        assert heading in text, (page, heading)
        body = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for block in re.findall(r"```sh\n(.*?)```", body, flags=re.DOTALL):
            commands.extend(line.strip() for line in block.splitlines() if line.strip())
    return commands


def test_the_sections_show_commands_for_each_user() -> None:
    commands = section_commands()
    assert any(c.startswith("docker compose -f docker/compose.yaml") for c in commands)
    for needed in ("mhs config", "mhs inject", "mhs faults set", "mhs faults clear", "mhs logs"):
        assert any(c.startswith(needed) for c in commands), needed
    assert any(c.startswith("scripts/inject-queue") for c in commands)


def test_every_command_in_the_sections_works_as_written(served: Served, tmp_path: Path) -> None:
    # What the commands name: a folder of messages, and a log of the roles.
    (tmp_path / "messages").mkdir()
    payload = HL7_TEMPLATE.format(
        interaction="RCMR_IN010000UK05",
        message_id="1",
        to_asid="918000000002",
        from_asid="918000000001",
    )
    (tmp_path / "messages/gp2gp.json").write_bytes(orjson.dumps({"payload": payload}))
    shutil.copy(served.log, tmp_path / "roles.log")
    ran = 0
    for command in section_commands():
        argv = shlex.split(command)
        if argv[0] == "mhs":
            argv = [sys.executable, "-m", "mhs", *argv[1:]]
        elif argv[0].startswith("scripts/"):
            argv[0] = str(ROOT / argv[0])
        else:
            assert argv[0] == "docker", command  # no engine here: tests/ops/test_container.py
            assert (ROOT / argv[argv.index("-f") + 1]).is_file()
            continue
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **served.env},
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        ran += 1
    assert ran >= 12
    assert served.mhs("faults", "list", "--json").stdout.strip() == "[]"  # cleared at the end


def test_the_readme_is_short_and_its_links_lead_somewhere() -> None:
    assert len(README) < 12_000  # what a newcomer needs in ten minutes; depth is in docs/
    setup = README.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    first = re.findall(r"```sh\n(.*?)```", setup, flags=re.DOTALL)[0]
    assert [line.split("#")[0].strip() for line in first.strip().splitlines()] == [
        "scripts/dev mhs simulate",
        "scripts/test",
    ]
    assert "MHS_SAMPLES_DIR" in README
    assert 'export PATH="$PWD/.venv/bin:$PATH"' in README
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"
