"""The TaskFlow persistence backend on the project database."""
import sqlalchemy
from taskflow import engines, states
from taskflow.patterns import linear_flow
from taskflow import retry
from taskflow import task

from vmflow.engine import persistence as engine_persistence
from vmflow.engine import persistence_backend


class Add(task.Task):
    def execute(self, x):
        return x + 1


class FailOnFirstHost(task.Task):
    def execute(self, host):
        if host == "host1":
            raise ValueError(f"{host} is broken")


def test_one_backend_per_process_and_database(conf, db_engine):
    first = engine_persistence.get_persistence(conf)
    assert engine_persistence.get_persistence(conf) is first
    assert first.source_engine is db_engine
    engine_persistence.forget_persistence()
    assert engine_persistence.get_persistence(conf) is not first


def test_flows_persist_their_atoms(conf, db_engine):
    backend = engine_persistence.get_persistence(conf)
    flow = linear_flow.Flow("adds").add(Add("one", provides="y"),
                                        Add("two", rebind={"x": "y"}))
    engine = engines.load(flow, store={"x": 1}, backend=backend)
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    detail = engine_persistence.get_flow_detail(backend, flow_uuid)
    assert detail.state == states.SUCCESS
    results = {atom.name: atom.results for atom in detail}
    assert (results["one"], results["two"]) == (2, 3)


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(conf,
                                                             db_engine):
    backend = engine_persistence.get_persistence(conf)
    with backend.writer.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        options = connection.get_execution_options()
    assert mode == "wal"
    assert options["sqlite_begin"] == "IMMEDIATE"


def test_the_database_password_is_not_in_the_backend_conf():
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg2://vmflow:s3cr3t@127.0.0.1:1/vmflow")
    backend = persistence_backend.ProgressBackend(engine)
    assert "s3cr3t" not in repr(backend._conf)
    assert "s3cr3t" not in repr(backend.writer)


def test_retry_histories_load_with_the_values_the_retry_provided(
        conf, db_engine):
    """TaskFlow 6.5 alone loads a failed attempt with its failure in place
    of its value (what a resumed flow would then provide)."""
    backend = engine_persistence.get_persistence(conf)
    flow = linear_flow.Flow("on-hosts", retry=retry.ForEach(
        ["host1", "host2"], name="hosts", provides="host"))
    flow.add(FailOnFirstHost("place"))
    engine = engines.load(flow, backend=backend)
    engine.run()
    detail = engine_persistence.get_flow_detail(backend,
                                                engine.storage.flow_uuid)
    history = next(atom for atom in detail if atom.name == "hosts").results
    assert [value for value, _failures in history] == ["host1", "host2"]
    failure = history[0][1]["place"]
    assert failure.check(ValueError) and failure.exception_str == (
        "host1 is broken")
    assert history[1][1] == {}
