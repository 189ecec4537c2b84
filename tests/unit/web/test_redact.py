"""What the web view masks before it shows anything."""
import pytest

from vmflow import conf as vmflow_conf
from vmflow.web import redact

MASK = redact.MASK


@pytest.mark.parametrize("key", [
    "password", "db_password", "SECRET", "client_secret", "api_token",
    "ssh_key", "private_key", "KeyName", "credentials", "Credential_file"])
def test_credential_like_keys(key):
    assert redact.is_credential_key(key)


@pytest.mark.parametrize("key", [
    "instance_uuid", "request_id", "flavor", "host_name", "image", "pass",
    "tok", "cred"])
def test_ordinary_keys(key):
    assert not redact.is_credential_key(key)


@pytest.mark.parametrize("text, shown", [
    ("postgresql://vmflow:hunter2@db/vmflow",
     f"postgresql://vmflow:{MASK}@db/vmflow"),
    ("mysql+pymysql://root:p%40ss@127.0.0.1:3306/x failed",
     f"mysql+pymysql://root:{MASK}@127.0.0.1:3306/x failed"),
    ("see https://:tok@example.com/a and redis://u:v@r:6379/0",
     f"see https://:{MASK}@example.com/a and redis://u:{MASK}@r:6379/0"),
    ("user only: ssh://root@host/ and http://host:8080/path",
     "user only: ssh://root@host/ and http://host:8080/path"),
    ("qemu+ssh://admin:x&amp;y@h/system",
     f"qemu+ssh://admin:{MASK}@h/system"),
    ("no url here: a:b@c", "no url here: a:b@c"),
])
def test_url_passwords_are_masked(text, shown):
    assert redact.Redactor().text(text) == shown


def test_configured_secrets_are_masked_whole():
    redactor = redact.Redactor(["sqlite:////srv/state/vmflow.sqlite",
                                "b0ard", ""])
    assert redactor.text(
        "cannot open sqlite:////srv/state/vmflow.sqlite; board b0ard") == (
        f"cannot open {MASK}; board {MASK}")
    assert redactor.text(None) is None
    assert redactor.text(42) == "42"


def test_stores_are_masked_at_every_depth():
    redactor = redact.Redactor(["topsecret"])
    store = {"instance_uuid": "u1", "db_password": "x", "nested": {
        "API_TOKEN": {"a": 1}, "hosts": ["h1", "https://u:p@h/", 3],
        "note": "has topsecret inside"}, "count": 2, "flag": None}
    assert redactor.data(store) == {
        "instance_uuid": "u1", "db_password": MASK, "nested": {
            "API_TOKEN": MASK, "hosts": ["h1", f"https://u:{MASK}@h/", 3],
            "note": f"has {MASK} inside"}, "count": 2, "flag": None}
    assert store["db_password"] == "x"  # a copy: the input is unchanged


def test_secret_values_are_the_database_url_and_every_secret_option(conf):
    assert redact.secret_values(conf) == [vmflow_conf.database_url(conf)]
    conf.set_override("connection", "postgresql://u:pw@db/vmflow",
                      "database")
    conf.set_override("password", "redis-pw", "jobboard")
    try:
        assert redact.secret_values(conf) == [
            "postgresql://u:pw@db/vmflow", "redis-pw"]
    finally:
        conf.clear_override("connection", "database")
        conf.clear_override("password", "jobboard")
