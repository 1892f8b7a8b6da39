"""Unit tests of the snapshot and redaction code (no hub needed)."""

from sightline import _native
from sightline._snapshot import REDACTED, Limits, safe_repr, snapshot


class BrokenRepr:
    def __repr__(self):
        raise RuntimeError("no repr for you")


class WrongRepr:
    def __repr__(self):
        return 42


def test_redacts_names_recursively():
    v = {
        "password": "p1",
        "db_password": "p2",
        "user_token": "t",
        "API_KEY": "k",
        "Authorization": "Bearer abc",
        "cookie": "c",
        "private_key": "x",
        "nested": {"deeper": {"client_secret": "s", "fine": 1}},
        "list": [{"token": "t2"}],
    }
    s = snapshot(v)
    for k in ("password", "db_password", "user_token", "API_KEY", "Authorization", "cookie", "private_key"):
        assert s[k] == REDACTED, k
    assert s["nested"]["deeper"] == {"client_secret": REDACTED, "fine": 1}
    assert s["list"] == [{"token": REDACTED}]


def test_redacts_values_by_pattern():
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    assert snapshot({"blob": pem})["blob"] == REDACTED
    assert snapshot(["Bearer eyJabc.def.ghi"]) == [REDACTED]
    assert snapshot("sk-live-123456") == REDACTED
    assert snapshot("plain text") == "plain text"
    # The Rust side agrees (it redacts argument summaries on the hot path).
    assert _native.is_secret("db_password", None)
    assert _native.is_secret(None, pem)
    assert not _native.is_secret("count", "hello")


def test_cycles_are_cut():
    a: list = [1]
    a.append(a)
    d: dict = {"x": 1}
    d["self"] = d
    assert snapshot(a) == [1, "<cycle: list>"]
    assert snapshot(d) == {"x": 1, "self": "<cycle: dict>"}


def test_broken_repr_is_safe():
    assert "repr failed: RuntimeError" in safe_repr(BrokenRepr())
    assert "repr failed: TypeError" in safe_repr(WrongRepr())  # repr() refuses non-str
    assert "repr failed" in snapshot({"o": BrokenRepr()})["o"]


def test_caps():
    s = snapshot("x" * 10_000, Limits(length=50))
    assert s.startswith("x" * 50) and s.endswith("[10000 chars]")
    deep = [[[[[1]]]]]
    assert snapshot(deep, Limits(depth=2)) == [["<list len=1>"]]
    wide = list(range(100))
    s = snapshot(wide, Limits(breadth=10))
    assert s[:10] == list(range(10)) and s[10] == "…[90 more]"
    big = {str(i): "y" * 100 for i in range(1000)}
    s = snapshot(big, Limits(breadth=1000, total=2000))
    assert "…[snapshot budget exhausted]" in s.values()
