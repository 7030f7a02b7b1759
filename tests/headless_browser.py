"""Open an HTML file in a real headless Chromium and report what the page saw: errors, images, text.

No Python browser bindings: a copy of the page gets a small script that, once the page has loaded,
writes its findings into the DOM as JSON, and `--dump-dom` prints the DOM. An error listener in
capture mode, installed before anything else on the page, records script errors and resources
that failed to load.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "headless_shell")
RESULT_ID = "parity-browser-check"

_LISTEN = ("<script>window.__parityErrors=[];window.addEventListener('error',function(e){"
           "window.__parityErrors.push(e.message||('failed to load '+((e.target&&(e.target.src||e.target.href))||'?')"
           ").slice(0,200));},true);</script>")
_REPORT = ("<script>window.addEventListener('load',function(){var imgs=Array.from(document.images);"
           "var out={errors:window.__parityErrors,images:imgs.length,"
           "decoded:imgs.filter(function(i){return i.complete&&i.naturalWidth>0;}).length,"
           "widths:imgs.map(function(i){return i.naturalWidth;}),"
           "title:document.title,h1:(document.querySelector('h1')||{}).textContent||'',"
           "text:document.body.innerText.slice(0,300)};"
           f"var pre=document.createElement('pre');pre.id='{RESULT_ID}';"
           "pre.textContent=JSON.stringify(out);document.body.appendChild(pre);});</script>")


def find_chromium() -> str | None:
    """The Chromium binary: $PARITY_CHROMIUM if set, else the first of NAMES on PATH."""
    if os.environ.get("PARITY_CHROMIUM"):
        return os.environ["PARITY_CHROMIUM"]
    return next((path for path in map(shutil.which, NAMES) if path), None)


def _run(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                           f"--user-data-dir={tmp / 'profile'}", *args], capture_output=True, text=True, timeout=120)


def check_page(binary: str, page: Path, tmp: Path) -> dict:
    """Load a copy of `page` (with the checking scripts added) and return what the page reported."""
    text = page.read_text(encoding="utf-8")
    head = text.find("<head>")
    at = head + len("<head>") if head >= 0 else 0
    probe = tmp / "checked.html"
    probe.write_text(text[:at] + _LISTEN + text[at:] + _REPORT, encoding="utf-8")
    done = _run(binary, tmp, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(rf'<pre id="{RESULT_ID}">(.*?)</pre>', done.stdout, re.S)
    if done.returncode != 0 or found is None:
        raise AssertionError(f"Chromium did not report on the page (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))  # --dump-dom escapes <, > and & in text


def screenshot(binary: str, page: Path, tmp: Path, out: Path, size: str = "1200,3000") -> Path:
    """A PNG of the page as a reader sees it, for a person to look at."""
    _run(binary, tmp, "--hide-scrollbars", f"--screenshot={out}", f"--window-size={size}", page.as_uri())
    return out
