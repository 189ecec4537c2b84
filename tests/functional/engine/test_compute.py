"""Requests on servers (vmflow.compute) against SQLite, PostgreSQL and
MariaDB: a server name is taken once per project, even by racing creates."""
import threading
import uuid

import pytest
from taskflow import exceptions as tf_exc

from tests.functional.engine import helpers
from vmflow import compute, exception
from vmflow.engine import jobboard_sql
from vmflow.persistence import models

RACERS = 8


FLAVOR = IMAGE = "engine-test"  # what helpers.add_instance creates


@pytest.fixture
def inventory(any_db):
    helpers.add_instance(any_db)
    return any_db


@pytest.fixture
def project():
    return "p-" + uuid.uuid4().hex[:8]


def test_racing_creates_of_one_name_make_one_server(conf, inventory,
                                                    project):
    barrier = threading.Barrier(RACERS)
    outcomes = []

    def create():
        barrier.wait()
        try:
            outcomes.append(compute.create_server("same", FLAVOR, IMAGE,
                                                  project, conf=conf))
        except exception.AlreadyExists as error:
            outcomes.append(error)

    threads = [threading.Thread(target=create) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    made = [o for o in outcomes if isinstance(o, compute.Request)]
    assert len(made) == 1, outcomes
    assert len(outcomes) == RACERS
    servers = helpers.rows(inventory, models.Instance, name="same",
                           project=project)
    assert [server.uuid for server in servers] == [made[0].instance_uuid]


def test_the_same_name_in_another_project_is_another_server(
        conf, inventory, project):
    first = compute.create_server("web", FLAVOR, IMAGE, project, conf=conf)
    second = compute.create_server("web", FLAVOR, IMAGE, project + "-b",
                                   conf=conf)
    assert first.instance_uuid != second.instance_uuid
    with pytest.raises(exception.AlreadyExists):
        compute.create_server("web", FLAVOR, IMAGE, project, conf=conf)


def test_a_build_that_cannot_be_posted_is_error_and_holds_nothing(
        conf, inventory, project, monkeypatch):
    def refuse(*args, **kwargs):
        raise tf_exc.JobFailure("the board is down")

    monkeypatch.setattr(jobboard_sql.SQLJobBoard, "post", refuse)
    with pytest.raises(tf_exc.JobFailure):
        compute.create_server("vm1", FLAVOR, IMAGE, project, conf=conf)
    server, = helpers.rows(inventory, models.Instance, name="vm1",
                           project=project)
    assert (server.vm_state, server.task_state) == ("error", None)
    fault, = helpers.rows(inventory, models.InstanceFault,
                          instance_uuid=server.uuid)
    assert fault.message == ("the build could not be posted: JobFailure: "
                             "the board is down")
    assert helpers.rows(inventory, models.InstanceLock,
                        instance_uuid=server.uuid) == []
    action, = helpers.rows(inventory, models.InstanceAction,
                           instance_uuid=server.uuid)
    assert action.result == "error"
    assert helpers.rows(inventory, models.QuotaHold,
                        consumer_uuid=server.uuid) == []
