"""Every Python example in docs/ runs (against real servers started here)."""

from __future__ import annotations

import os
import re

import pytest

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def python_blocks(name: str) -> list[str]:
    with open(os.path.join(DOCS, name)) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_streams_guide_example_runs(redis_server, tmp_path, monkeypatch, capsys):
    (block,) = python_blocks("streams.md")
    monkeypatch.chdir(tmp_path)
    exec(compile(block.replace("redis://localhost:6379/0", redis_server.url),
                 "docs/streams.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "5000.0"


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(DOCS) if n.endswith(".md")))
def test_every_doc_example_is_covered(name):
    """A new guide with Python examples needs its own test above."""
    covered = {"streams.md"}
    assert name in covered or not python_blocks(name), f"docs/{name} has untested examples"
