"""SQLAlchemy 2.x models of vmflow's application data.

TaskFlow's own tables (logbooks, flow and atom details) live in the same
database but are created by TaskFlow's migrations, not declared here.
"""
import datetime
import uuid as uuidlib

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer,
                        MetaData, String, Text, UniqueConstraint)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from vmflow import power_states

NAME_LENGTH = 63

# Explicit constraint names keep migrations identical across SQLite,
# PostgreSQL and MariaDB, and make them droppable by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# MySQL/MariaDB's plain DATETIME keeps whole seconds; the job board's times
# need the microseconds SQLite and PostgreSQL keep (a claim's expiry would
# lose up to a second, all of a sub-second claim).
PRECISE_DATETIME = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql",
                                           "mariadb")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def new_uuid():
    return str(uuidlib.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, onupdate=utcnow)


class Host(TimestampMixin, Base):
    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    uri: Mapped[str] = mapped_column(String(255))
    ssh_user: Mapped[str | None] = mapped_column(String(64))
    ssh_host: Mapped[str | None] = mapped_column(String(255))
    ssh_port: Mapped[int | None] = mapped_column(Integer)
    instances_path: Mapped[str] = mapped_column(String(1024))
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))


class Flavor(TimestampMixin, Base):
    __tablename__ = "flavors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)


class Image(TimestampMixin, Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True,
                                      default=new_uuid)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    file: Mapped[str] = mapped_column(String(1024))
    disk_format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    virtual_size_bytes: Mapped[int] = mapped_column(BigInteger)
    kernel: Mapped[str | None] = mapped_column(String(1024))
    initrd: Mapped[str | None] = mapped_column(String(1024))
    cmdline: Mapped[str | None] = mapped_column(String(1024))


class QuotaLimit(TimestampMixin, Base):
    """A project's hard limit on one resource; absent rows use defaults."""

    __tablename__ = "quota_limits"
    __table_args__ = (UniqueConstraint("project", "resource"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME_LENGTH))
    resource: Mapped[str] = mapped_column(String(32))
    hard_limit: Mapped[int] = mapped_column(Integer)


class Instance(TimestampMixin, Base):
    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_project_name", "project", "name"),
                      Index("ix_instances_host", "host"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True,
                                      default=new_uuid)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    project: Mapped[str] = mapped_column(String(NAME_LENGTH))
    flavor_id: Mapped[int] = mapped_column(ForeignKey("flavors.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    # What the instance holds, copied from the flavor at build/resize time
    # so quota and claims stay checkable after a flavor is deleted.
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    vm_state: Mapped[str] = mapped_column(String(32))
    task_state: Mapped[str | None] = mapped_column(String(32))
    power_state: Mapped[str] = mapped_column(String(32),
                                             default=power_states.NOSTATE)
    launched_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    terminated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)


class Allocation(TimestampMixin, Base):
    """A claim of resources on a host by a consumer (instance/migration)."""

    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("consumer_uuid", "host_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consumer_uuid: Mapped[str] = mapped_column(String(36), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)


class Migration(TimestampMixin, Base):
    __tablename__ = "migrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True,
                                      default=new_uuid)
    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid"), index=True)
    migration_type: Mapped[str] = mapped_column(String(16))
    source_host: Mapped[str] = mapped_column(String(NAME_LENGTH))
    dest_host: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    old_flavor_id: Mapped[int] = mapped_column(ForeignKey("flavors.id"))
    new_flavor_id: Mapped[int] = mapped_column(ForeignKey("flavors.id"))
    old_vm_state: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    # What each flavor holds, copied as instances copy theirs.
    old_vcpus: Mapped[int] = mapped_column(Integer, server_default="0")
    old_memory_mb: Mapped[int] = mapped_column(Integer, server_default="0")
    old_disk_gb: Mapped[int] = mapped_column(Integer, server_default="0")
    new_vcpus: Mapped[int] = mapped_column(Integer, server_default="0")
    new_memory_mb: Mapped[int] = mapped_column(Integer, server_default="0")
    new_disk_gb: Mapped[int] = mapped_column(Integer, server_default="0")


class InstanceAction(Base):
    __tablename__ = "instance_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    project: Mapped[str] = mapped_column(String(NAME_LENGTH))
    start_time: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow)
    finish_time: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    result: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)


class InstanceActionEvent(Base):
    __tablename__ = "instance_action_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("instance_actions.id"), index=True)
    event: Mapped[str] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    start_time: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow)
    finish_time: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    result: Mapped[str | None] = mapped_column(String(16))
    traceback: Mapped[str | None] = mapped_column(Text)


class InstanceFault(Base):
    __tablename__ = "instance_faults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid"), index=True)
    code: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(String(255))
    details: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow)


class QuotaHold(TimestampMixin, Base):
    """Quota one consumer holds: ``reserved`` while building, ``committed``
    once it is live. A project's usage is the sum of its holds."""

    __tablename__ = "quota_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consumer_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    instances: Mapped[int] = mapped_column(Integer)
    cores: Mapped[int] = mapped_column(Integer)
    ram: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))


class ProjectLock(Base):
    """One row per project, locked (SELECT ... FOR UPDATE) while its quota
    is checked and written, so concurrent reservations serialise."""

    __tablename__ = "project_locks"

    project: Mapped[str] = mapped_column(String(NAME_LENGTH),
                                         primary_key=True)


class InstanceLock(Base):
    """The one operation running on an instance, and the job running it."""

    __tablename__ = "instance_locks"

    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    job_uuid: Mapped[str] = mapped_column(String(36), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow)


class Job(Base):
    """A job of the embedded SQL job board (TaskFlow JobBoard semantics)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_board_state", "board", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    board: Mapped[str] = mapped_column(String(NAME_LENGTH))
    name: Mapped[str] = mapped_column(String(255))
    book_uuid: Mapped[str | None] = mapped_column(String(64))
    book_name: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(255))
    claim_expires_at: Mapped[datetime.datetime | None] = mapped_column(
        PRECISE_DATETIME)
    created_at: Mapped[datetime.datetime] = mapped_column(
        PRECISE_DATETIME, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        PRECISE_DATETIME, default=utcnow, onupdate=utcnow)
