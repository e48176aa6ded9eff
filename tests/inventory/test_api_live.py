"""The API as a client meets it: a real gunicorn process with production settings (DEBUG=false)
on a free port, against the test database, with a committed key of acme.

- schemathesis drives every operation of /api/openapi.json and checks server errors, status
  codes, content types and response bodies against the document;
- a table of bad inputs (issue 17's list and more) gets its exact status and error code, and
  nothing is written."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context

from tests.inventory.helpers import count_rows, make_catalog, wipe_tenant

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / "var" / "test-servers"
# Production settings refuse the development key; the test process issues the server's key
# under the same secret.
LIVE_SECRET = secrets.token_urlsafe(50)


def _database_url() -> str:
    s = connection.settings_dict
    assert s["NAME"].startswith("test_"), "the server must only ever see the test database"
    user, password = quote(s["USER"] or ""), quote(s["PASSWORD"] or "")
    socket_dir = (s.get("OPTIONS") or {}).get("host")
    if socket_dir and not s["HOST"]:
        return f"postgresql://{user}:{password}@/{s['NAME']}?host={socket_dir}"
    return f"postgresql://{user}:{password}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveApi:
    """gunicorn with production settings, one worker with two threads."""

    def __init__(self, key: str, static_root: Path):
        self.key = key
        self.port = _free_port()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log = open(LOG_DIR / f"api-{self.port}.log", "w+b")  # noqa: SIM115
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "DEBUG": "false",
            "SECRET_KEY": LIVE_SECRET,
            "API_KEY_HMAC_SECRET": LIVE_SECRET,
            "ALLOWED_HOSTS": "127.0.0.1,localhost,.localhost",
            "SECURE_SSL_REDIRECT": "false",
            "HEALTH_REQUIRE_WORKER": "false",
            "STATIC_ROOT": str(static_root),
        }
        for name in ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "TEST_DATABASE_NAME"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "config.wsgi", "-w", "1", "--threads", "2"]
            + ["-b", f"127.0.0.1:{self.port}", "--timeout", "60"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.output()}")
            try:
                self.request("GET", "/api/openapi.json")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer in {timeout} s: {self.output()}")

    def request(self, method: str, path: str, body: bytes | None = None, **headers):
        """(status, content type, parsed JSON or None, raw body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"Host": "127.0.0.1", **headers})
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        return response.status, response.getheader("Content-Type", ""), data, raw

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _collectstatic(static_root: Path) -> None:
    """Production serves hashed files from a manifest: build it, ninja's swagger-ui included."""
    env = {**os.environ, "STATIC_ROOT": str(static_root), "DEBUG": "false"}
    env |= {"SECRET_KEY": LIVE_SECRET, "API_KEY_HMAC_SECRET": LIVE_SECRET}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, tmp_path_factory):
    from tenants.models import ApiKey, Organization
    from tenants.services import api_key_issue

    with django_db_blocker.unblock():
        acme = Organization.objects.get(slug="acme")
        with override_settings(API_KEY_HMAC_SECRET=LIVE_SECRET):
            key = api_key_issue(organization=acme, label="live api tests")
        with schema_context("acme"):
            catalog = make_catalog(items=4, locations=2, lots_per_item=1, prefix="LIVE")
        static_root = tmp_path_factory.mktemp("static")
        _collectstatic(static_root)
        server = LiveApi(key.raw_key, static_root)
        try:
            server.wait_ready()
            server.catalog = catalog
            yield server
        finally:
            server.stop()
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                wipe_tenant("acme", cursor)
            ApiKey.objects.filter(label="live api tests").delete()


def _written() -> tuple[int, int, int, int]:
    return tuple(
        count_rows("acme", t)
        for t in ("inventory_ledger", "inventory_postings", "inventory_items", "inventory_locations")
    )


def test_it_conforms_to_its_openapi_document_under_schemathesis(live, tmp_path):
    report = tmp_path / "schemathesis.json"
    command = [
        str(BIN / "st"),
        "run",
        f"{live.base}/api/openapi.json",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--header",
        f"X-Api-Key: {live.key}",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        os.environ.get("API_FUZZ_EXAMPLES", "50"),
        "--seed",
        "20261201",
        # One worker: hypothesis describing lambdas from two threads at once trips a CPython
        # 3.11 bug in ast.parse (SystemError: AST constructor recursion depth mismatch).
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    started = time.monotonic()
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=os.environ
    )
    elapsed = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:] + "\n--- server ---\n" + live.output()
    assert "No issues found" in output or "0 failures" in output.lower() or run.returncode == 0
    print(f"schemathesis: {elapsed:.0f} s\n{output[-1500:]}")


def _entry(live, **fields) -> dict:
    items, locations, _ = live.catalog
    return {"item": items[0].sku, "location": locations[0].code, "qty": "1", "kind": "receipt"} | fields


def _json(data) -> bytes:
    return json.dumps(data).encode()


JSON = "application/json"
# (name, method, path, body or a function of the server giving it, content type, extra headers,
#  expected status, expected error code, a field the error must name or None)
BAD_INPUTS = [
    # query strings: impossible dates and times, offsets PostgreSQL refuses
    ("since Feb 30", "GET", "/api/ledger?since=2026-02-30T00:00:00", None, None, {}, 400, "validation_failed", "since"),
    ("since month 13", "GET", "/api/ledger?since=2026-13-01T00:00:00", None, None, {}, 400, "validation_failed", "since"),
    ("since T25:00", "GET", "/api/ledger?since=2026-01-01T25:00:00", None, None, {}, 400, "validation_failed", "since"),
    ("since +99:00", "GET", "/api/ledger?" + urlencode({"since": "2026-01-01T00:00:00+99:00"}), None, None, {}, 400, "validation_failed", "since"),
    ("since -24:00", "GET", "/api/ledger?since=2026-01-01T00:00:00-24:00", None, None, {}, 400, "validation_failed", "since"),
    ("until +16:00", "GET", "/api/ledger?" + urlencode({"until": "2026-01-01T00:00:00+16:00"}), None, None, {}, 400, "validation_failed", "until"),
    ("until Arabic digits", "GET", "/api/ledger?" + urlencode({"until": "٢٠٢٦-01-01T00:00:00"}), None, None, {}, 400, "validation_failed", "until"),
    ("since a number", "GET", "/api/ledger?since=1700000000", None, None, {}, 400, "validation_failed", "since"),
    ("limit text", "GET", "/api/ledger?limit=lots", None, None, {}, 400, "validation_failed", "limit"),
    ("limit 0", "GET", "/api/ledger?limit=0", None, None, {}, 400, "validation_failed", "limit"),
    ("limit huge", "GET", "/api/ledger?limit=" + "9" * 40, None, None, {}, 400, "validation_failed", "limit"),
    ("cursor negative", "GET", "/api/ledger?cursor=-1", None, None, {}, 400, "validation_failed", "cursor"),
    ("cursor beyond bigint", "GET", "/api/balances?cursor=99999999999999999999", None, None, {}, 400, "validation_failed", "cursor"),
    ("kind unknown", "GET", "/api/ledger?kind=nope", None, None, {}, 400, "validation_failed", "kind"),
    ("page_size 1000", "GET", "/api/balances?page_size=1000", None, None, {}, 400, "validation_failed", "page_size"),
    ("page 0", "GET", "/api/items?page=0", None, None, {}, 400, "validation_failed", "page"),
    ("count maybe", "GET", "/api/items?count=maybe", None, None, {}, 400, "validation_failed", "count"),
    ("page and cursor", "GET", "/api/items?page=1&cursor=A", None, None, {}, 400, "validation_failed", "cursor"),
    ("NUL in query", "GET", "/api/balances?item=a%00", None, None, {}, 400, "invalid_characters", None),
    ("search too long", "GET", "/api/items?search=" + "x" * 101, None, None, {}, 400, "validation_failed", "search"),
    # bodies that are not (good) JSON
    ("malformed JSON", "POST", "/api/ledger", b"{not json", JSON, {}, 400, "invalid_json", None),
    ("invalid UTF-8", "POST", "/api/ledger", b'{"item": "\xff"}', JSON, {}, 400, "invalid_json", None),
    ("empty body", "POST", "/api/ledger", b"", JSON, {}, 400, "validation_failed", "body"),
    ("100,000 nested [", "POST", "/api/ledger", b"[" * 100_000, JSON, {}, 400, "invalid_json", None),
    ("nested in a field", "POST", "/api/ledger", lambda lv: _json(_entry(lv)).replace(b'"1"', b"[" * 5000 + b"]" * 5000), JSON, {}, 400, "invalid_json", None),
    ("100,000 nested [ as text/json", "POST", "/api/ledger", b"[" * 100_000, "text/json", {}, 400, "invalid_json", None),
    ("multipart body", "POST", "/api/ledger", b'--xx\r\nContent-Disposition: form-data; name="item"\r\n\r\nA\r\n--xx--\r\n', "multipart/form-data; boundary=xx", {}, 400, "validation_failed", "body"),
    ("form body", "POST", "/api/ledger", b"item=A&qty=1", "application/x-www-form-urlencoded", {}, 400, "validation_failed", "body"),
    ("text/plain body", "POST", "/api/ledger", b"a=b", "text/plain", {}, 400, "validation_failed", "body"),
    ("NUL as application/json", "POST", "/api/ledger", lambda lv: _json(_entry(lv, reference="a\x00")), JSON, {}, 400, "invalid_characters", None),
    ("NUL as text/json", "POST", "/api/ledger", lambda lv: _json(_entry(lv, reference="a\x00")), "text/json", {}, 400, "invalid_characters", None),
    ("NUL as vnd.api+json", "POST", "/api/ledger", lambda lv: _json(_entry(lv, reference="a\x00")), "application/vnd.api+json", {}, 400, "invalid_characters", None),
    ("lone surrogate in reference", "POST", "/api/ledger", lambda lv: _json(_entry(lv, reference="\ud800")), JSON, {}, 400, "validation_failed", "entries[0].reference"),
    ("lone surrogate in key", "POST", "/api/ledger", lambda lv: _json({"entries": [_entry(lv)], "idempotency_key": "\ud800"}), JSON, {}, 400, "validation_failed", "idempotency_key"),
    ("lone surrogate in item", "POST", "/api/ledger", lambda lv: _json(_entry(lv, item="\udfff")), JSON, {}, 400, "validation_failed", "entries[0].item"),
    ("not an object", "POST", "/api/ledger", b'"entry"', JSON, {}, 400, "validation_failed", "body"),
    ("a huge integer", "POST", "/api/ledger", lambda lv: _json(_entry(lv)).replace(b'"1"', b"9" * 5000), JSON, {}, 400, "invalid_json", None),
    ("over 2.5 MB", "POST", "/api/ledger", b'{"entries": [' + b" " * 3_000_000 + b"]}", JSON, {}, 413, "body_too_large", None),
    ("over 2.5 MB text/json", "POST", "/api/ledger", b'{"entries": [' + b" " * 3_000_000 + b"]}", "text/json", {}, 413, "body_too_large", None),
    # wrong types: refused, never coerced
    ("idempotency_key false", "POST", "/api/ledger", lambda lv: _json({"entries": [_entry(lv)], "idempotency_key": False}), JSON, {}, 400, "validation_failed", "idempotency_key"),
    ("reference []", "POST", "/api/ledger", lambda lv: _json(_entry(lv, reference=[])), JSON, {}, 400, "validation_failed", "entries[0].reference"),
    ("qty true", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty=True)), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("lot 5", "POST", "/api/ledger", lambda lv: _json(_entry(lv, lot=5)), JSON, {}, 400, "validation_failed", "entries[0].lot"),
    ("unknown field", "POST", "/api/ledger", lambda lv: _json(_entry(lv, price="1")), JSON, {}, 400, "validation_failed", "entries[0].price"),
    ("entries empty", "POST", "/api/ledger", b'{"entries": []}', JSON, {}, 400, "validation_failed", "entries"),
    ("entries not a list", "POST", "/api/ledger", b'{"entries": "x"}', JSON, {}, 400, "validation_failed", "entries"),
    ("1,001 entries", "POST", "/api/ledger", lambda lv: _json({"entries": [_entry(lv)] * 1001}), JSON, {}, 400, "validation_failed", "entries"),
    ("Idempotency-Key too long", "POST", "/api/ledger", lambda lv: _json(_entry(lv)), JSON, {"Idempotency-Key": "k" * 201}, 400, "validation_failed", "Idempotency-Key"),
    # quantities
    ("qty 1e999999999", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="1e999999999")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty 1e+999999999999999999", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="1e+999999999999999999")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty -1e-999999999", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="-1e-999999999")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty number 1e999999999", "POST", "/api/ledger", lambda lv: _json(_entry(lv)).replace(b'"1"', b"1e999999999"), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty number -1e-999999999", "POST", "/api/ledger", lambda lv: _json(_entry(lv)).replace(b'"1"', b"-1e-999999999"), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty 1_000", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="1_000")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty +5", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="+5")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty Arabic-Indic", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="٥")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty NaN", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="NaN")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty 7 decimals", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="0.0000001")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty 13 digits", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="1000000000000")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    ("qty zero", "POST", "/api/ledger", lambda lv: _json(_entry(lv, qty="0")), JSON, {}, 400, "validation_failed", "entries[0].qty"),
    # times in the body
    ("occurred_at -16:59", "POST", "/api/ledger", lambda lv: _json(_entry(lv, occurred_at="2026-01-01T00:00:00-16:59")), JSON, {}, 400, "validation_failed", "entries[0].occurred_at"),
    ("occurred_at +23:00", "POST", "/api/ledger", lambda lv: _json(_entry(lv, occurred_at="2026-01-01T00:00:00+23:00")), JSON, {}, 400, "validation_failed", "entries[0].occurred_at"),
    ("occurred_at Feb 30", "POST", "/api/ledger", lambda lv: _json(_entry(lv, occurred_at="2026-02-30T00:00:00Z")), JSON, {}, 400, "validation_failed", "entries[0].occurred_at"),
    ("occurred_at a number", "POST", "/api/ledger", lambda lv: _json(_entry(lv, occurred_at=1700000000)), JSON, {}, 400, "validation_failed", "entries[0].occurred_at"),
    ("occurred_at year 1 +01:00", "POST", "/api/ledger", lambda lv: _json(_entry(lv, occurred_at="0001-01-01T00:00:00+01:00")), JSON, {}, 400, "validation_failed", "entries[0].occurred_at"),
    ("kind upper case", "POST", "/api/ledger", lambda lv: _json(_entry(lv, kind="RECEIPT")), JSON, {}, 400, "validation_failed", "entries[0].kind"),
    ("unknown item", "POST", "/api/ledger", lambda lv: _json(_entry(lv, item="NOPE")), JSON, {}, 400, "validation_failed", "entries[0].item"),
    # catalogue
    ("sku false", "POST", "/api/items", b'{"sku": false, "name": "n", "unit": "g"}', JSON, {}, 400, "validation_failed", "sku"),
    ("name surrogate", "POST", "/api/items", b'{"sku": "NEW-1", "name": "\\ud800", "unit": "g"}', JSON, {}, 400, "validation_failed", "name"),
    ("unit kg", "POST", "/api/items", b'{"sku": "NEW-1", "name": "n", "unit": "kg"}', JSON, {}, 400, "validation_failed", "unit"),
    ("location site []", "POST", "/api/locations", b'{"code": "NEW-1", "name": "n", "site": []}', JSON, {}, 400, "validation_failed", "site"),
    # routing, methods, paths
    ("malformed X-Org-Id", "GET", "/api/balances", None, None, {"X-Org-Id": "!!"}, 400, "malformed_org_id", None),
    ("DELETE ledger", "DELETE", "/api/ledger", None, None, {}, 405, "method_not_allowed", None),
    ("unknown path", "GET", "/api/nope", None, None, {}, 404, "not_found", None),
]


def test_bad_inputs_get_their_exact_status_and_code_and_write_nothing(live):
    with schema_context("acme"):
        before = _written()
    problems = []
    for name, method, path, body, content_type, headers, status, code, field in BAD_INPUTS:
        if callable(body):
            body = body(live)
        headers = {"X-Api-Key": live.key, **headers}
        if content_type:
            headers["Content-Type"] = content_type
        got_status, got_type, data, raw = live.request(method, path, body, **headers)
        error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
        if (
            got_status != status
            or not got_type.startswith("application/json")
            or error.get("code") != code
            or (field is not None and field not in (error.get("fields") or {}))
        ):
            problems.append((name, got_status, got_type, raw[:300]))
    assert not problems, "\n".join(map(repr, problems)) + "\n--- server ---\n" + live.output()
    with schema_context("acme"):
        assert _written() == before


def test_the_docs_page_renders_in_a_browser_from_our_own_server_only(live):
    """Swagger UI from ninja's static files (collectstatic, hashed, production settings): every
    request the page makes goes to our server, and the operations render."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip(f"no browser at {chromium} (make test installs Debian's chromium)")
    requested, failed = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = browser.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.on("requestfailed", lambda r: failed.append(r.url))
            response = page.goto(f"{live.base}/api/docs", wait_until="networkidle")
            assert response.status == 200
            page.wait_for_selector(".opblock", timeout=15_000)
            assert page.locator(".opblock").count() == 10  # every operation of the document
        finally:
            browser.close()
    outside = [u for u in requested if not u.startswith(live.base + "/")]
    assert requested and not outside, outside
    assert not failed, failed
    assert any(u.endswith(".js") and "/static/ninja/swagger-ui-bundle." in u for u in requested)


def test_a_too_large_body_still_sent_gets_its_413_not_a_reset_connection(live):
    """The server answers 413 from Content-Length alone; if it then closed with the body unread,
    the client still sending would meet a reset (a broken pipe in CI) and never see the answer.
    Half the body, a pause in which the answer is written, then the rest: the answer arrives."""
    body = b'{"entries": [' + b" " * 3_000_000 + b"]}"
    head = (
        f"POST /api/ledger HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {live.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with schema_context("acme"):
        before = _written()
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(1.0)
        sock.sendall(body[len(body) // 2 :])  # raised BrokenPipe/ConnectionReset before
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    payload = rest.partition(b"\r\n\r\n")[2]  # chunked or not: the one JSON object in it
    assert json.loads(payload[payload.index(b"{") : payload.rindex(b"}") + 1])["error"]["code"] == (
        "body_too_large"
    )
    with schema_context("acme"):
        assert _written() == before
