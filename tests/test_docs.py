"""The README documents what the code ships: every config option, generated tables up to date."""

from pathlib import Path

import pytest

from lossbench.config import config_dir
from lossbench.docs import render

README = Path(__file__).resolve().parent.parent / "README.md"


def test_generated_sections_are_up_to_date():
    text = README.read_text()
    assert "<!-- metrics-table:start -->" in text
    assert render(text) == text, "README is stale: run `python -m lossbench.docs`"


@pytest.mark.parametrize("group", ["data", "model", "loss", "regularization", "imbalance", "rebalance"])
def test_every_option_of_every_group_is_in_the_readme(group):
    text = README.read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| `{group}=` |"))
    options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
    assert options, group
    for option in options:
        assert f"`{option}`" in row, f"{group}={option} is not documented in the README's config table"


def test_readme_test_command_is_what_ci_runs():
    text = README.read_text()
    block = text.split("<!-- test-command -->", 1)[1].split("```", 2)[1]
    command = block.removeprefix("bash\n").strip()
    assert command.endswith("python -m pytest")
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci  # CI extracts and runs that very block
