"""One module per operation, each exposing an unloaded-flow factory."""
from taskflow import flow as tf_flow

# Options every engine that runs vmflow's flows gets. ``defer_reverts``: a
# retry controller's REVERT hands the decision to the retry around it, and
# with none around it reverts the whole flow. Without it a REVERT of a
# top-level wait (a stop's wait for shutdown) would revert only that wait
# and end the flow with its first steps, sentinel included, not reverted.
ENGINE_OPTIONS = {"defer_reverts": True}


def iter_tasks(flow):
    """The flow's tasks in order, nested flows included (not retries).

    Tests enumerate the steps to fault or crash from this, never from a
    hand-written list.
    """
    for node, _meta in flow.iter_nodes():
        if isinstance(node, tf_flow.Flow):
            yield from iter_tasks(node)
        else:
            yield node


def iter_atoms(flow):
    """Every atom of the flow in order: each flow's retry controller
    first, then its tasks and nested flows."""
    if flow.retry is not None:
        yield flow.retry
    for node, _meta in flow.iter_nodes():
        if isinstance(node, tf_flow.Flow):
            yield from iter_atoms(node)
        else:
            yield node


def find_subflow(flow, name):
    """The nested flow called ``name`` in ``flow`` (at any depth), or
    None."""
    for node, _meta in flow.iter_nodes():
        if isinstance(node, tf_flow.Flow):
            if node.name == name:
                return node
            found = find_subflow(node, name)
            if found is not None:
                return found
    return None
