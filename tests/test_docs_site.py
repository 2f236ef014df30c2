"""The docs site's sources stay complete: the API page lists every public name and the gallery
can title every example. The build itself runs in .ci/run (warnings as errors), not here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import spinecls

REPO = Path(__file__).resolve().parents[1]
API = REPO / "docs" / "api.rst"
EXAMPLES = sorted((REPO / "examples").glob("*.py"))


def _autosummary_entries(text: str) -> list[str]:
    """The names listed in the ``.. autosummary::`` directives of an rST page."""
    entries, inside = [], False
    for line in text.splitlines():
        if line.startswith(".. "):
            inside = line.strip() == ".. autosummary::"
        elif inside and line.startswith("   ") and not line.strip().startswith(":"):
            entries.append(line.strip())
        elif line.strip() and not line.startswith(" "):
            inside = False
    return entries


def test_api_page_lists_every_public_name_and_submodule_once():
    text = API.read_text()
    assert re.findall(r"^\.\. currentmodule:: (\S+)", text, re.M) == ["spinecls"]
    entries = _autosummary_entries(text)
    public = [*spinecls.__all__, *spinecls._SUBMODULES]
    missing = sorted(set(public) - set(entries))
    assert not missing, f"docs/api.rst lacks an autosummary entry for {missing}"
    unknown = sorted(set(entries) - set(public))
    assert not unknown, f"docs/api.rst lists {unknown}, not in spinecls.__all__ or submodules"
    assert len(entries) == len(set(entries)), "docs/api.rst lists a name twice"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_docstring_opens_with_a_gallery_title(example):
    # sphinx-gallery makes the docstring's first paragraph the page title: without an
    # underlined rST title the page has none and the -W docs build fails.
    docstring = ast.get_docstring(ast.parse(example.read_text()), clean=True)
    assert docstring, f"{example.name}: no module docstring"
    title, underline, *_ = docstring.splitlines()
    assert title.strip() and underline == "=" * len(title), (
        f"{example.name}: the docstring must open with a title underlined by '=' "
        f"of its length, got {title!r} / {underline!r}"
    )
