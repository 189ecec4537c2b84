"""Records an operator manages: hosts, flavors, images and quota limits.

Functions take a session, validate everything before writing anything, and
return plain dicts (never ORM objects) so callers can print or store them.
"""
import sqlalchemy
from sqlalchemy import exc as sa_exc

from vmflow import exception
from vmflow.persistence import models

LIVE_INSTANCE = models.Instance.vm_state != "deleted"


def as_dict(row, columns):
    return {column: getattr(row, column) for column in columns}


def get_by_name(session, model, kind, name):
    row = session.scalar(sqlalchemy.select(model).where(model.name == name))
    if row is None:
        raise exception.NotFound(kind=kind, name=name)
    return row


def ensure_name_free(session, model, kind, name):
    exists = session.scalar(
        sqlalchemy.select(model.id).where(model.name == name))
    if exists is not None:
        raise exception.AlreadyExists(kind=kind, name=name)


def insert_unique(session, row, kind):
    """Add ``row``; a concurrent insert of the same name is AlreadyExists."""
    session.add(row)
    try:
        session.flush()
    except sa_exc.IntegrityError as error:
        raise exception.AlreadyExists(kind=kind, name=row.name) from error
    return row


def list_by_name(session, model, columns):
    """Every record of ``model`` in name order, as dicts of ``columns``."""
    rows = session.scalars(sqlalchemy.select(model).order_by(model.name))
    return [as_dict(row, columns) for row in rows]


def delete_unless_used(session, model, kind, name, instance_column):
    """Delete the record ``name`` unless a live instance refers to it
    through ``instance_column`` (InUse naming how many do)."""
    row = get_by_name(session, model, kind, name)
    users = session.scalar(
        sqlalchemy.select(sqlalchemy.func.count(models.Instance.id))
        .where(instance_column == row.id, LIVE_INSTANCE))
    if users:
        raise exception.InUse(kind=kind, name=name,
                              reason=f"{users} instance(s) use it")
    session.delete(row)
