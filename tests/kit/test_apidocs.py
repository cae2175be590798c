"""`/docs` and `/redoc` render with no network but this service's own socket.

The browser test runs Debian's `chromium` headless against the app on 127.0.0.1 with every
other host unresolvable and a dead proxy, and reads the rendered DOM: a page whose assets
came from a CDN stays an empty shell there. Without chromium it skips, except where
`PODBACKUP_REQUIRE_BROWSER=1` (set by `.ci/run`), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.snapshots.server import serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Every host but the loopback address fails to resolve; a proxy on the discard port (nothing
# listens) catches anything that would go around the resolver. Chromium sends loopback
# addresses past a proxy by itself, so only the app is reachable.
OFFLINE_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=127.0.0.1:9",
]


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(METHOD, path, operationId) of every operation in the OpenAPI document."""
    verbs = {"get", "put", "post", "delete", "patch", "head", "options"}
    return [
        (verb.upper(), path, op["operationId"])
        for path, item in schema["paths"].items()
        for verb, op in item.items()
        if verb in verbs
    ]


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_their_own_assets(client: httpx.AsyncClient, page: str) -> None:
    r = await client.get(page)
    assert r.status_code == 200
    parser = _Assets()
    parser.feed(r.text)
    assert parser.urls, "the page names no script or stylesheet"
    for url in parser.urls:
        assert url.startswith("/"), f"{page} loads {url} from another host"
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    # The Swagger UI / ReDoc code itself, and the spec the page reads, at the same path.
    assert any(u.endswith((".js",)) for u in parser.urls)
    assert "/openapi.json" in r.text
    assert "fonts.googleapis" not in r.text
    assert (await client.get("/openapi.json")).status_code == 200


async def _dump_dom(url: str) -> str:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="podbackup-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={profile}",
            *OFFLINE_FLAGS,
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("PODBACKUP_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


async def test_docs_render_operations_offline(app: FastAPI, chromium: str) -> None:
    operations = _operations(app.openapi())
    assert len(operations) > 20
    async with serve(app) as base:
        swagger, redoc = await asyncio.gather(_dump_dom(f"{base}/docs"), _dump_dom(f"{base}/redoc"))

    # Swagger UI: one expanded "opblock" per operation, each naming its path; ReDoc: a
    # section per operation, keyed by its operationId. Both checked before either fails.
    blocks = re.findall(r'<div class="opblock opblock-\w+[^"]*" id="operations-', swagger)
    paths = set(re.findall(r'data-path="([^"]+)"', swagger))
    missing_paths = {path for _m, path, _id in operations} - paths
    missing_ids = [i for _m, _p, i in operations if f'id="operation/{i}"' not in redoc]
    rendered = {
        "/docs operations": len(blocks),
        "/docs paths missing": sorted(missing_paths),
        "/redoc operations missing": missing_ids,
    }
    assert rendered == {
        "/docs operations": len(operations),
        "/docs paths missing": [],
        "/redoc operations missing": [],
    }, f"/docs: {swagger[:800]}\n/redoc: {redoc[:800]}"
