"""The README is a front page and the rest lives in docs/ (issue 33): size, links, commands.

`mkdocs build --strict` (run by .ci/run) checks the site's own links and API references; these
tests check what it does not: the README's size and links, and that the hand-written pages use the
virtual environment's Python and no path that exists only on the project's machines."""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
GENERATED = {"study.md", "benchmark/summary.md", "model_benchmark/models.md", "model_benchmark/other_models.md",
             "model_benchmark/recipe_selection/models.md"}  # written by the result scripts
HAND_WRITTEN = sorted(p for p in DOCS.rglob("*.md") if p.relative_to(DOCS).as_posix() not in GENERATED)


def test_the_readme_is_a_front_page_of_at_most_12_kib():
    assert len(README.read_bytes()) <= 12 * 1024


def test_the_readme_links_to_files_that_exist():
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README.read_text())
    assert "docs/reliability.md" in links and "docs/index.md" in links
    missing = [link for link in links if not (REPO_ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


@pytest.mark.parametrize("page", [README, *HAND_WRITTEN], ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_commands_use_the_virtual_environment_and_no_machine_local_paths(page):
    text = page.read_text()
    assert "../shared" not in text
    bare = [line for line in text.splitlines()
            if re.search(r"(?<![\w/.-])python (source/|-m )", line) and not line.startswith("<!--")]
    assert not bare, f"{page.name}: use .venv/bin/python (or say to activate the venv): {bare}"


def test_every_hand_written_page_is_in_the_site_navigation():
    nav = (REPO_ROOT / "mkdocs.yml").read_text()
    missing = [p.relative_to(DOCS).as_posix() for p in HAND_WRITTEN
               if p.relative_to(DOCS).as_posix() not in nav]
    assert not missing
