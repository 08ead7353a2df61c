"""Sphinx configuration: the guides in this folder (Markdown, through MyST) and an API
reference generated from the docstrings. Built by `make docs` into docs/_build/html,
offline (no intersphinx, no remote theme assets), with every warning an error."""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # import streammix from this checkout

import streammix  # noqa: E402

project = "streammix"
author = "the streammix authors"
copyright = "streammix authors"
release = version = streammix.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: GitHub-style anchors for the headings, so `page.md#a-heading` links work on
# GitHub and on the site alike.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

# API reference: autodoc reads the docstrings as they are (reST, no numpydoc sections).
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
autosummary_generate = False

html_theme = "furo"
html_title = f"streammix {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# Links from a guide to files of the repository outside docs/ work on GitHub as they are
# written (`../benchmarks/RESULTS.md`). On the site, the benchmark results are a page of
# their own (results.md includes the file), so such links are pointed at that page when
# a guide is read; links to other repository files (scripts, configs) become downloads.
SITE_PAGES = {"../benchmarks/RESULTS.md": "results.md"}


def _site_links(app, docname, source):
    text = source[0]
    for repo_path, page in SITE_PAGES.items():
        text = re.sub(rf"\]\({re.escape(repo_path)}(#[^)]*)?\)",
                      lambda m: f"]({page}{m.group(1) or ''})", text)
    if docname == root_doc:
        # The index lists the guides as plain links (so that it reads well on GitHub);
        # the site's navigation is a hidden toctree of the same pages, in the same order.
        pages = []
        for target in re.findall(r"\]\(([\w.-]+)\.md\)", text):
            if target not in pages:
                pages.append(target)
        text += "\n```{toctree}\n:hidden:\n\n" + "\n".join(pages) + "\n```\n"
    source[0] = text


def setup(app):
    app.connect("source-read", _site_links)
