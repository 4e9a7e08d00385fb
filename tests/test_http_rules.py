"""The HTTP rules in-process, through the serving ASGI layers on a store a real scan filled (no
server process): conditional GET, encodings and bad queries for pages as for feeds. The
end-to-end tests (test_http.py) run the same rules through a real server."""

from __future__ import annotations

import gzip

import brotli
import pytest

from feedsvc.app import build, create_app
from feedsvc.config import Settings
from feedsvc.scan import Scanner
from feedsvc.store import Store
from tests.helpers import REAL_CORPUS, SAMPLE_SEEDS, copy_corpus
from tests.server import asgi_client


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rules")
    seeds = copy_corpus(workdir / "seeds", REAL_CORPUS, SAMPLE_SEEDS)
    settings = Settings(seeds=seeds, db=f"sqlite:///{workdir}/db.sqlite3")
    store = Store(settings.db)
    Scanner(store, settings).scan()
    store.close()
    app = create_app(build(settings, follow=False))
    yield asgi_client(app)
    app.extensions["feedsvc"].service.store.close()


@pytest.mark.parametrize("path", ["/", "/opml", "/feeds/all.atom"])
def test_documents_answer_304_to_their_validators_and_keep_them(client, path):
    first = client.get(path)
    assert first.status_code == 200
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag and again.headers["Last-Modified"] == modified
    by_date = client.get(path, headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304
    other = client.get(path, headers={"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert other.status_code == 200  # If-None-Match decides alone when sent


@pytest.mark.parametrize("path", ["/", "/opml", "/feeds/all.rss"])
def test_documents_come_compressed_as_asked_with_the_same_validators(client, path):
    plain = client.get(path)
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
    squeezed = client.get(path, headers={"Accept-Encoding": "br, gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()) == plain.get_data()
    assert squeezed.headers["Content-Encoding"] == "br"
    assert brotli.decompress(squeezed.get_data()) == plain.get_data()
    assert plain.headers["ETag"] == zipped.headers["ETag"] == squeezed.headers["ETag"]
    assert "Accept-Encoding" in zipped.headers["Vary"]


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/feeds/all.atom?limit=abc", 400),
        ("/feeds/all.atom?page=0", 400),
        ("/feeds/all.atom?limit=1&limit=2", 400),
        ("/feeds/all.atom?page=999999", 404),
        ("/feeds/nope.atom", 404),
        ("/entries/not-an-id", 404),
        ("/nowhere", 404),
    ],
)
def test_bad_requests_get_one_line_and_a_status(client, target, status):
    response = client.get(target)
    assert response.status_code == status
    body = response.get_data(as_text=True)
    assert body.endswith("\n") and body.count("\n") == 1
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_pages_carry_their_security_headers_and_status_is_never_cached(client):
    index = client.get("/")
    assert "default-src 'none'" in index.headers["Content-Security-Policy"]
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    status = client.get("/status")
    assert status.headers["Cache-Control"] == "no-store"
    assert status.get_json()["entries"] == 48
