"""MkDocs hook: publish the repository's images/ folder (beside docs/) as images/ in the site.

The result scripts write their plots to images/ and their reports to docs/, linking the plots as
../images/... so that the pages read right on GitHub. MkDocs only serves docs/, so this hook adds
every file under images/ to the site at images/<same path> and rewrites, in each page, the links
that climb out of docs/ into images/ to point at those copies. A link to an image that does not
exist still fails `mkdocs build --strict`.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

IMAGES = "images"


def _repo_root(config) -> Path:
    return Path(config["docs_dir"]).resolve().parent


def on_files(files: Files, config) -> Files:
    images = _repo_root(config) / IMAGES
    for path in sorted(images.rglob("*")):
        if path.is_file() and not path.is_symlink():
            uri = path.relative_to(images.parent).as_posix()
            files.append(File(uri, str(images.parent), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    depth = page.file.src_uri.count("/")  # folders between docs/ and the page
    climb = "../" * (depth + 1)           # from the page up to the repository root
    return re.sub(r"(\]\()" + re.escape(climb) + IMAGES + "/", r"\g<1>" + "../" * depth + IMAGES + "/", markdown)
