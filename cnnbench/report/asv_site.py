"""asv's published site (``asv publish`` → reports/asv/) loads jQuery, Flot, Bootstrap and three small plugins from
CDNs, so offline — a benchmark box that reaches only package registries, a reader on a train — it shows "Can not
determine continental origin of swallow" and no graph. ``make_offline`` copies the same libraries, vendored from npm
(``asv_vendor/``, versions and licences in its LICENSES.md), beside the site and points its pages at them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

VENDOR = Path(__file__).with_name("asv_vendor")
#: a CDN address (its file name, version-agnostic) → the vendored copy
FILES = {"jquery-3.3.1.min.js": "js/jquery.min.js", "jquery.flot.min.js": "js/jquery.flot.js",
         "jquery.flot.time.min.js": "js/jquery.flot.time.js", "jquery.flot.selection.min.js":
         "js/jquery.flot.selection.js", "jquery.flot.categories.min.js": "js/jquery.flot.categories.js",
         "jquery.flot.orderBars.js": "js/jquery.flot.orderBars.js", "stupidtable.min.js": "js/stupidtable.min.js",
         "md5.min.js": "js/md5.min.js", "bootstrap.min.js": "js/bootstrap.min.js",
         "bootstrap.min.css": "css/bootstrap.min.css"}
CDN = re.compile(r'(src|href)="https://(?:code\.jquery\.com|cdnjs\.cloudflare\.com|cdn\.jsdelivr\.net)/(?:[^"]*/)?([^/"]+)"')


def make_offline(html_dir: str | Path) -> int:
    """Vendor the libraries into ``html_dir/vendor`` and rewrite its pages' CDN links; returns the links rewritten.
    A CDN file we do not vendor is left alone (and named in a ValueError), so a newer asv cannot fail silently."""
    html_dir = Path(html_dir)
    shutil.copytree(VENDOR, html_dir / "vendor", dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))
    count = 0

    def local(m: re.Match) -> str:
        nonlocal count
        if m.group(2) not in FILES:
            raise ValueError(f"asv's site loads {m.group(0)}, which is not vendored (cnnbench/report/asv_site.py)")
        count += 1
        return f'{m.group(1)}="vendor/{FILES[m.group(2)]}"'

    for page in html_dir.glob("*.html"):
        text = CDN.sub(local, page.read_text())
        # the CDN tags carry subresource-integrity hashes of the minified builds: not of our copies
        page.write_text(re.sub(r'\s+(?:integrity|crossorigin)="[^"]*"', "", text))
    return count
