"""The docs in the repository: the README's links resolve, and the generated parts
of docs/design.md (every config key, every command) match the code."""

import re
from pathlib import Path

import click

from pinsage.cli import COMMANDS, cli
from tests.config_reference import reference

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"


def test_readme_is_a_front_page_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert "docs/design.md" in links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_design_lists_every_config_key_with_its_default():
    text = DESIGN.read_text()
    block = text.split("<!-- config reference: begin -->\n")[1].split("<!-- config")[0]
    assert block == reference(), (
        "docs/design.md's config reference is stale: replace it with the output of "
        "`python -m tests.config_reference`"
    )


def test_design_lists_every_command():
    text = DESIGN.read_text()
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                assert f"pinsage {name} {sub}" in text, f"pinsage {name} {sub}"
        else:
            assert f"pinsage {name}" in text, f"pinsage {name}"
