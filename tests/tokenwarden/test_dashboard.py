"""The dashboard's serving side, without a browser: the page and its assets are served
from the package with a strict Content-Security-Policy, nothing else is, the assets ship
in the wheel, and the scripts never turn data into markup. (The browser tests drive it:
``tests/browser``.)"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tokenwarden.app import create_app
from tokenwarden.dashboard import CONTENT_SECURITY_POLICY
from tokenwarden.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "tokenwarden" / "dashboard" / "static"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'tw.db'}"), on_admin_key=print)
    with TestClient(app) as c:
        yield c


def test_the_page_is_served_with_a_strict_policy_and_no_credentials(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = r.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_with_their_type(client: TestClient, name: str, media_type: str) -> None:
    r = client.get(f"/dashboard/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == media_type
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.content == (STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/missing.js",
        "/dashboard/routes.py",
        "/dashboard/..%2Froutes.py",
        "/dashboard/%2e%2e%2f__init__.py",
        "/dashboard/.hidden.js",
        "/dashboard/static/app.js",
    ],
)
def test_nothing_but_the_assets_is_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_the_page_has_no_inline_script_or_style() -> None:
    html = (STATIC / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="/dashboard/' in tag, tag
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", html) is None  # no inline body
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers


def test_every_asset_ships_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tokenwarden"]
    for asset in STATIC.iterdir():
        rel = f"dashboard/static/{asset.name}"
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


def test_scripts_import_only_shipped_modules_and_never_write_markup() -> None:
    for script in STATIC.glob("*.js"):
        text = script.read_text()
        for imported in re.findall(r'from "\./([^"]+)"', text):
            assert (STATIC / imported).is_file(), (script.name, imported)
        assert re.search(r'\bfrom "(?!\./)', text) is None, script.name  # no remote imports
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (script.name, sink)
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text, script.name
