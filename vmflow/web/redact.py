"""Keeping credentials out of what the web view shows.

The view shows stores, error messages and instance action messages as
they were persisted. Posting already refuses stores with credential-like
keys (:data:`vmflow.engine.posting.SECRET_WORDS`), but a page is shown to
anyone who reaches the port, so it redacts again, more broadly:

* a mapping value whose key contains one of :data:`CREDENTIAL_WORDS`;
* the password of a URL written ``scheme://user:password@host``;
* the literal value of every configuration option registered with
  ``secret=True`` (the database URL, the Redis password) and the
  database URL itself (a default SQLite one names the state folder).
"""
import dataclasses
import re

from vmflow import conf as vmflow_conf

MASK = "***"
CREDENTIAL_WORDS = ("password", "secret", "token", "key", "credential")
URL_CREDENTIALS = re.compile(
    r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s/@]+@")


def is_credential_key(key):
    lowered = str(key).lower()
    return any(word in lowered for word in CREDENTIAL_WORDS)


def secret_values(conf=vmflow_conf.CONF):
    """The configured values a page must never show, longest first (so a
    URL is masked whole before a password inside it)."""
    values = {vmflow_conf.database_url(conf)}
    for module in vmflow_conf.MODULES:
        for group, opts in module.list_opts().items():
            name = getattr(group, "name", group)
            section = conf if name in (None, "DEFAULT") else conf[name]
            values.update(str(getattr(section, opt.dest)) for opt in opts
                          if opt.secret and getattr(section, opt.dest))
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Masks :func:`secret_values` and URL passwords in text, and
    credential-like keys in stores."""

    def __init__(self, secrets=()):
        self.secrets = tuple(secret for secret in secrets if secret)

    def text(self, value):
        if value is None:
            return None
        text = str(value)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return URL_CREDENTIALS.sub(rf"\g<prefix>{MASK}@", text)

    def data(self, value):
        """A copy of JSON-like ``value`` with credentials masked."""
        if isinstance(value, dict):
            return {key: MASK if is_credential_key(key) else self.data(item)
                    for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def fields(self, record):
        """Mask the text fields of dataclass ``record`` in place."""
        for field in dataclasses.fields(record):
            value = getattr(record, field.name)
            if isinstance(value, str):
                setattr(record, field.name, self.text(value))
        return record
