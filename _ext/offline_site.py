"""A Sphinx extension that makes the site work offline (issue 11).

The scripts a page needs come from the site itself, out of _vendor/ (made by
tools/vendor_web.py): MathJax on the pages with math (``mathjax_path``), and
RequireJS with the widget manager's embed script on the pages that carry
widget state (myst-nb's ``nb_ipywidgets_js``), with _ext/static/dgm-widgets.js
between them (it points RequireJS at the vendored widget fonts and lets the
widgets typeset with MathJax 3). Both settings are in _config.yml and name
files relative to ``_static/``.

_vendor/ and _ext/static/ are added to ``html_static_path`` here, after Jupyter Book has read
its configuration: Jupyter Book puts every ``.js`` and ``.css`` file of the
static folders it knows of on every page, which would load all of MathJax's
extensions and the 3.5 MB widget bundle on each one.

It also keeps one copy of each script on a page (Sphinx 7.4 lists some inline
scripts twice; sphinx-thebe's then redeclares a ``const``, a console error).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

VENDOR = Path(__file__).resolve().parents[1] / "_vendor"
OWN = Path(__file__).resolve().parent / "static"  # the site's own scripts that only some pages load


def serve_vendored_files(app: Sphinx, config: Config) -> None:
    """Check that every script the pages name is local and vendored, and copy _vendor/ into _static/."""
    wanted = [config.mathjax_path, *config.nb_ipywidgets_js]
    for path in wanted:
        if "://" in path or path.startswith("//"):
            raise ExtensionError(f"{path} is loaded from the network: vendor it (tools/vendor_web.py)")
        if not ((VENDOR / path).is_file() or (OWN / path).is_file()):
            raise ExtensionError(f"{path} is in neither {VENDOR} nor {OWN} (tools/vendor_web.py makes _vendor/)")
    config.html_static_path += [str(VENDOR), str(OWN)]


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    """Keep one copy of each script on a page.

    An inline script that an extension adds while the sources are read (sphinx-thebe's
    ``const THEBE_JS_URL = ...``, sphinx-togglebutton's ``var togglebuttonSelector``) reaches
    Sphinx 7.4's page list twice, once named ``None`` and once ``''``; the second ``const`` is
    a console error ("Identifier 'THEBE_JS_URL' has already been declared").
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for script in scripts:
        key = (getattr(script, "filename", None) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", serve_vendored_files, priority=900)
    app.connect("html-page-context", drop_repeated_scripts, priority=999)  # after the handlers that add scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
