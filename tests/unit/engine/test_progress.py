"""flow_progress of a flow detail saved without a factory (a flow a test
or a tool ran with engines.load): its task details are its steps."""
from oslo_utils import uuidutils
from taskflow import states
from taskflow.persistence import models as tf_models

from vmflow.engine import progress


def test_without_a_factory_the_task_details_are_the_steps():
    flow_detail = tf_models.FlowDetail("plain", uuidutils.generate_uuid())
    for model, name, state in (
            (tf_models.TaskDetail, "first", states.SUCCESS),
            (tf_models.RetryDetail, "retry", states.RUNNING),
            (tf_models.TaskDetail, "second", states.RUNNING),
            (tf_models.TaskDetail, "third", states.PENDING)):
        atom = model(name, uuidutils.generate_uuid())
        atom.state = state
        flow_detail.add(atom)
    assert progress.factory_flow(flow_detail) is None
    assert progress.flow_progress(flow_detail) == progress.FlowProgress(
        done=1, total=3, running=("second",), failing=None, error=None)
