"""The agent over TLS: a real hub serving ``https://`` with a certificate signed by a private CA
this test makes with the ``openssl`` CLI. A traced program's events are committed over WSS and
over HTTPS when the agent is given the CA (``SIGHTLINE_CA_FILE`` or ``ca_file=``); without it,
or with the wrong scheme, the agent says what is wrong and what to set, and nothing arrives."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import PRINT_STATUS, Hub, agent_env, agent_report, new_run_id, run_traced, short

if shutil.which("openssl") is None:
    # The image has openssl; a machine without it cannot make the test CA, and says so.
    raise RuntimeError("test_tls.py needs the openssl CLI to make a CA and a certificate")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca_and_leaf(d: Path) -> tuple[Path, Path, Path]:
    """A CA (basicConstraints CA:TRUE) and a leaf for 127.0.0.1 and localhost signed by it:
    rustls refuses a CA certificate used as the server's own, so the two are distinct."""
    ca_key, ca, key, csr, cert, ext = (d / n for n in ("ca.key", "ca.pem", "key.pem", "leaf.csr", "cert.pem", "leaf.ext"))
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sightline test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(ca_key), "-out", str(ca),
    )
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(cert),
    )
    return ca, cert, key


class TlsHub(Hub):
    """The hub fixture's helpers, reading over HTTPS with the test CA."""

    def __init__(self, tmp: Path, ca: Path, cert: Path, key: Path):
        super().__init__(tmp, "--tls-cert", str(cert), "--tls-key", str(key))
        self.ca = ca
        self.ctx = ssl.create_default_context(cafile=str(ca))

    def get(self, path: str, **params) -> dict:
        q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        with urllib.request.urlopen(f"{self.url}{path}{'?' + q if q else ''}", timeout=30, context=self.ctx) as r:
            return json.loads(r.read())


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    h = TlsHub(d, *make_ca_and_leaf(d))
    assert h.url.startswith("https://127.0.0.1:"), h.url
    yield h
    h.close()


# The agent's own view of the transport, as the last line of stdout.
PROGRAM = r"""
import json, sightline

def work(i):
    return i * 2

for i in range(200):
    work(i)
left = sightline.flush(%(flush)s)
""" + PRINT_STATUS


report = agent_report


def assert_all_committed(hub: Hub, run_id: str) -> None:
    calls = hub.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) >= 200, source_events="call")
    assert sum(short(e) == "work" for e in calls) == 200
    exits = hub.wait_events(run_id, lambda evs: len(evs) == 1, source_events="process_exit")
    assert len(exits) == 1, "the process's exit arrived too"


@pytest.mark.parametrize("transport, expected", [("ws", "ws"), ("http", "http")])
def test_events_are_committed_over_tls_with_the_private_ca(tls_hub, tmp_path, transport, expected):
    run_id, p = run_traced(
        tls_hub, tmp_path, PROGRAM % {"flush": 15}, f"tls-{transport}",
        SIGHTLINE_TRANSPORT=transport, SIGHTLINE_CA_FILE=str(tls_hub.ca),
    )
    r = report(p)
    assert r["transport"] == expected, r
    assert r["left"] == 0 and r["last_error"] is None, r
    assert_all_committed(tls_hub, run_id)


def test_a_wss_url_and_the_ca_file_keyword(tls_hub, tmp_path):
    """`sightline.start(url="wss://...", ca_file=...)` in the program itself, no environment."""
    run_id = new_run_id("tls-keyword")
    url = tls_hub.url.replace("https://", "wss://", 1)
    src = (
        "import sightline\n"
        f"sightline.start(url={url!r}, ca_file={str(tls_hub.ca)!r}, run_id={run_id!r}, max_detail_per_s=0)\n"
        + (PROGRAM % {"flush": 15}).replace("import json, sightline", "import json")
    )
    env = {k: v for k, v in agent_env(None, run_id).items() if k != "SIGHTLINE_RUN_ID"}
    env["SIGHTLINE_SPOOL_DIR"] = str(tmp_path / "spool")
    p = subprocess.run([sys.executable, "-c", src], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    r = report(p)
    assert r["transport"] == "ws" and r["left"] == 0, r
    assert_all_committed(tls_hub, run_id)


def test_without_the_ca_nothing_is_sent_and_the_error_says_what_to_set(tls_hub, tmp_path):
    run_id, p = run_traced(tls_hub, tmp_path, PROGRAM % {"flush": 2}, "tls-no-ca", SIGHTLINE_FLUSH_TIMEOUT_S="1")
    r = report(p)
    assert r["sent"] == 0 and r["left"] > 0, r
    err = r["last_error"] or ""
    assert "not signed by a CA this agent trusts" in err and "SIGHTLINE_CA_FILE" in err, err
    assert "127.0.0.1" in err, err
    assert tls_hub.events(run_id) == [], "nothing reached the hub"


def test_a_missing_ca_file_is_refused_at_start(tls_hub, tmp_path):
    run_id, p = run_traced(
        tls_hub, tmp_path, "print('ran')\n", "tls-bad-ca", SIGHTLINE_CA_FILE=str(tmp_path / "nowhere.pem")
    )
    assert p.returncode != 0
    assert "nowhere.pem" in p.stderr and "SIGHTLINE_CA_FILE" in p.stderr, p.stderr


def test_a_ca_file_that_is_not_pem_is_refused_at_start(tls_hub, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    run_id, p = run_traced(tls_hub, tmp_path, "print('ran')\n", "tls-not-pem", SIGHTLINE_CA_FILE=str(bad))
    assert p.returncode != 0
    assert "no certificate in it" in p.stderr and "BEGIN CERTIFICATE" in p.stderr, p.stderr


def test_https_to_a_plain_hub_says_to_use_http(hub, tmp_path):
    plain = hub.url
    assert plain.startswith("http://")
    https = plain.replace("http://", "https://", 1)
    run_id, p = run_traced(
        None, tmp_path, PROGRAM % {"flush": 2}, "tls-to-plain", SIGHTLINE_URL=https, SIGHTLINE_FLUSH_TIMEOUT_S="1"
    )
    r = report(p)
    assert r["sent"] == 0, r
    assert "plain http://" in (r["last_error"] or ""), r


def test_the_python_client_with_and_without_the_ca(tls_hub, monkeypatch):
    from sightline.client import Client, HubError

    monkeypatch.delenv("SIGHTLINE_CA_FILE", raising=False)
    run_id = new_run_id("tls-client")
    ev = {"source": "custom", "source_event": "x", "entity_type": "log", "title": "over https", "run_id": run_id}
    seqs = Client(tls_hub.url, ca_file=str(tls_hub.ca)).publish([ev, dict(ev)])
    assert len(seqs) == 2
    assert [e["seq"] for e in tls_hub.events(run_id)] == seqs, "committed"
    monkeypatch.setenv("SIGHTLINE_CA_FILE", str(tls_hub.ca))
    assert Client(tls_hub.url).health()["status"] == "ok"
    monkeypatch.delenv("SIGHTLINE_CA_FILE")
    with pytest.raises(HubError, match="was refused .*SIGHTLINE_CA_FILE"):
        Client(tls_hub.url).publish(ev, max_attempts=5)
    with pytest.raises(ValueError, match="nowhere.pem"):
        Client(tls_hub.url, ca_file="/nowhere.pem")


def test_python_m_sightline_ca_file_option(tls_hub, tmp_path):
    script = tmp_path / "cli_ca.py"
    script.write_text(PROGRAM % {"flush": 15})
    run_id = new_run_id("tls-cli-option")
    env = agent_env(tls_hub, run_id, SIGHTLINE_SPOOL_DIR=str(tmp_path / "spool"))
    p = subprocess.run(
        [sys.executable, "-m", "sightline", "--ca-file", str(tls_hub.ca), str(script)],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    r = report(p)
    assert r["left"] == 0 and r["last_error"] is None, r
    assert_all_committed(tls_hub, run_id)
