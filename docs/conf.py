"""Sphinx configuration: the scikit-learn-contrib layout (numpydoc, pydata-sphinx-theme,
sphinx-gallery over examples/, MyST for the Markdown user guide).

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html``. The gallery shows the
examples' code without running them (CI already runs them against the installed wheel, in
.ci/check_wheel); ``SPINECLS_DOCS_RUN_EXAMPLES=1`` runs them and adds their output
(``SPINECLS_EXAMPLE_SMALL=1`` as well makes that take seconds).
"""

from __future__ import annotations

import importlib.util
import inspect
import os

from sphinx.pycode import ModuleAnalyzer

import spinecls

project = "spinecls"
author = "spinecls developers"
copyright = "spinecls developers"
release = spinecls.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build"]

# -- API reference --------------------------------------------------------------------
# api.rst lists the public names; autosummary writes one page per name into generated/
# with the templates in _templates/autosummary/ (class, function, module), as scikit-learn does.
autosummary_generate = True
autosummary_ignore_module_all = False  # a module's page lists exactly its __all__
autosummary_context = {"toplevel": sorted(spinecls.__all__)}
autodoc_typehints = "none"  # numpydoc's Parameters section already gives the types
autodoc_default_options = {"members": True}  # own members: not torch's or skorch's
add_module_names = False

numpydoc_show_class_members = False  # the class template lists the members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = True
# The checks that catch a docstring contradicting its signature or numpydoc's layout. The
# completeness checks (PR01 every parameter documented, RT01, SA01, EX01, ...) would flag dozens
# of existing docstrings; they can be added here as the docstrings are completed.
numpydoc_validation_checks = {"GL06", "PR02", "PR10"}
numpydoc_validation_exclude = {
    # its first parameter is named ``cls`` (the estimator class to load): numpydoc drops it
    # from the signature as a classmethod's implicit argument, then calls the documented one
    # unknown
    r"^spinecls\.persistence\.load$",
}

# -- User guide (Markdown) ------------------------------------------------------------
myst_heading_anchors = 3  # "cli.md#outputs-overwriting-and-interruptions" and the like

# -- Gallery --------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Every example is a runnable script (none is named plot_*): all of them run when the
    # gallery runs.
    "filename_pattern": r"/",
    "download_all_examples": False,
    "remove_config_comments": True,
    # The timing table would land in the source tree on every build, empty when nothing ran.
    "write_computation_times": False,
}
# sphinx-gallery's own setting (``-D plot_gallery=1`` overrides it): run the examples or not.
plot_gallery = str(os.environ.get("SPINECLS_DOCS_RUN_EXAMPLES") == "1")

# -- HTML -----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"spinecls {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 4,  # API reference, Examples, Installation, Quickstart
    "show_toc_level": 2,
}
html_static_path: list[str] = []


def _constant_docstring(app, what, name, obj, options, lines):
    # autodoc looks for a constant's docstring in the module it is documented from; the
    # top-level constants are defined in spinecls.labels (spinecls resolves them lazily), so
    # take the docstring written there. A constant without one shows none, not its type's.
    if what != "data":
        return
    module, _, attr = name.rpartition(".")
    if module == "spinecls" and attr in spinecls._LAZY:
        module = importlib.util.resolve_name(spinecls._LAZY[attr], "spinecls")
    doc = ModuleAnalyzer.for_module(module).find_attr_docs().get(("", attr))
    if doc:
        lines[:] = list(doc)
    elif lines and "\n".join(lines).strip() == inspect.cleandoc(type(obj).__doc__ or ""):
        lines.clear()


def _skip_metadata_requests(app, what, name, obj, skip, options):
    # scikit-learn generates set_{fit,predict,...}_request on every estimator class; their
    # docstrings point into scikit-learn's own glossary, which this site does not have.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_requests)
    # Before numpydoc (priority 500), so that numpydoc parses the docstring put in place here.
    app.connect("autodoc-process-docstring", _constant_docstring, priority=400)
