"""A small cloud for task and flow tests: SQLite, libvirt's test driver,
a tiny qcow2 image, a host, a flavor; and a runner for whole flows.

Import the fixtures into a test module (``from tests.cloud import ...``).
"""
import subprocess
import time

import pytest
from taskflow import engines, states
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.types import notifier

from vmflow import audit, flows, instances
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.inventory import flavors, hosts, images
from vmflow.persistence import api

TEST_URI = "test:///default"
NODE_XML = """<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>8</cores>
<threads>1</threads><active>8</active><mhz>2000</mhz><model>i686</model>
</cpu><memory>8388608</memory></node>"""


@pytest.fixture(scope="session")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path),
                    "16M"], check=True)
    return str(path)


class Cloud:
    """Inventory helpers and a flow runner on one database."""

    def __init__(self, engine, tmp_path):
        self.engine = engine
        self.tmp_path = tmp_path
        self.backend = impl_sqlalchemy.SQLAlchemyBackend(
            {"connection": str(engine.url)}, engine=engine)

    def session(self):
        return api.session_scope(self.engine)

    def add_host(self, name, uri=None, vcpus=4, memory_mb=4096,
                 disk_gb=40):
        """A host on ``uri``; ``uri=None`` gives it a private hypervisor
        (a test driver loaded from a file, independent of every other: one
        hypervisor is one host)."""
        if uri is None:
            node = self.tmp_path / f"{name}-node.xml"
            node.write_text(NODE_XML)
            uri = f"test://{node}"
        with self.session() as session:
            return hosts.add_host(
                session, name, uri, vcpus, memory_mb, disk_gb,
                instances_path=str(self.tmp_path / name / "instances"),
                verify=False)

    def create_instance(self, name="vm1", project="demo", flavor="tiny",
                        image="tiny"):
        with self.session() as session:
            return instances.create_instance_record(session, name, project,
                                                    flavor, image)

    def instance(self, instance_uuid):
        with self.session() as session:
            return instances.get_instance(session, instance_uuid)

    def run(self, factory, instance_uuid, **store):
        """Load the flow with TaskFlow's SQL persistence and run it.

        A failed flow is not an error here: tests look at the FlowRun's
        state, the atoms that ran and the database.
        """
        store = dict(store, instance_uuid=instance_uuid,
                     request_id="req-test")
        run = FlowRun(engines.load(factory(), store=store,
                                   backend=self.backend,
                                   **flows.ENGINE_OPTIONS))
        run.run()
        return run

    def audit(self):
        return audit.run_audit(self.engine)


class FlowRun:
    """A loaded engine and every atom state change it went through."""

    def __init__(self, engine):
        self.engine = engine
        self.transitions = []  # (atom name, state, time.monotonic())
        engine.atom_notifier.register(notifier.Notifier.ANY, self._record)

    def _record(self, state, details):
        name = details.get("task_name") or details.get("retry_name")
        self.transitions.append((name, state, time.monotonic()))

    def run(self):
        started = time.monotonic()
        try:
            self.engine.run()
        except Exception as error:  # the flow failed: kept for the tests
            self.error = error
        else:
            self.error = None
        self.seconds = time.monotonic() - started

    @property
    def state(self):
        return self.engine.storage.get_flow_state()

    def executed(self, name=None):
        """Atoms that started executing, in order (each time they did)."""
        return [atom for atom, state, _at in self.transitions
                if state == states.RUNNING and name in (None, atom)]

    def durations(self):
        """Seconds from RUNNING to SUCCESS of each atom that succeeded."""
        started, spent = {}, {}
        for atom, state, at in self.transitions:
            if state == states.RUNNING:
                started[atom] = at
            elif state == states.SUCCESS and atom in started:
                spent[atom] = at - started.pop(atom)
        return spent


@pytest.fixture
def cloud(conf, db_engine, tmp_path, image_file):
    """One host (``host1`` on test:///default), flavor and image ``tiny``."""
    conf.set_override("virt_type", "qemu", group="libvirt")
    conf.set_override("wait_running_seconds", 1, group="libvirt")
    conf.set_override("poll_interval_seconds", 0.05, group="libvirt")
    cloud = Cloud(db_engine, tmp_path)
    cloud.add_host("host1", uri=TEST_URI)
    with cloud.session() as session:
        flavors.create_flavor(session, "tiny", 1, 64, 1)
        images.add_image(session, "tiny", image_file)
    yield cloud
    # The test driver's state lives as long as a connection is open:
    # closing them gives the next test a fresh hypervisor.
    libvirt_connection.close_all()
