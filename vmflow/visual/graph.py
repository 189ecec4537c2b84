"""A job's flow as a drawable tree: what ``vmflow flow show`` and the web
view draw, built from the flow factory and the database alone.

:func:`job_view` needs no runner: the flow comes from the factory saved in
the job's flow detail (TaskFlow's ``flow_from_detail``), every atom's
state from its persisted atom detail, durations and hosts from the
instance action's events, a retry controller's attempts from its
persisted history. :func:`plan_view` draws an operation before anything
ran (every atom PENDING, with its docstring's first line).

The tree: a :class:`FlowNode` per flow (a cluster when drawn) holding its
retry controller, its children (:class:`AtomNode` or :class:`FlowNode`)
and its links (:class:`Link`: the order of a linear flow, the edges of a
graph flow, deciders included).
"""
import dataclasses
import datetime
import inspect

from taskflow import flow as tf_flow
from taskflow import retry as tf_retry
from taskflow import states
from taskflow.patterns import graph_flow, linear_flow

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.engine import actions, jobs_lookup, progress
from vmflow.visual import plans

ERROR_LENGTH = 160
VALUE_LENGTH = 40


@dataclasses.dataclass
class Attempt:
    """One try of a retry controller: the value it gave, the atoms that
    failed in it and the first error."""
    value: str
    failed: tuple
    error: str | None


@dataclasses.dataclass
class AtomNode:
    name: str
    kind: str  # "task" or "retry"
    summary: str
    state: str | None = None  # None: a plan, nothing ran
    runs: int = 0
    seconds: float | None = None
    hosts: tuple = ()
    error: str | None = None
    attempts: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Link:
    source: object  # AtomNode or FlowNode
    target: object
    decider: str | None = None


@dataclasses.dataclass
class FlowNode:
    name: str
    pattern: str  # "linear", "graph" or "unordered"
    retry: AtomNode | None
    children: list
    links: list
    seconds: float | None = None  # first step's start to last one's end

    def atoms(self):
        """Every atom inside, in order (retry first)."""
        if self.retry is not None:
            yield self.retry
        for child in self.children:
            if isinstance(child, FlowNode):
                yield from child.atoms()
            else:
                yield child

    @property
    def state(self):
        """IGNORE when a decider skipped everything in it."""
        atom_states = {atom.state for atom in self.atoms()}
        return states.IGNORE if atom_states == {states.IGNORE} else None


@dataclasses.dataclass
class FlowView:
    """What is drawn: the root flow plus what the heading says."""
    title: str
    root: FlowNode
    state: str | None = None  # the flow's persisted state; None: a plan
    finished: bool = False
    job_uuid: str | None = None
    instance_uuid: str | None = None
    progress: object = None  # progress.FlowProgress
    started: datetime.datetime | None = None
    ended: datetime.datetime | None = None

    def atoms(self):
        return list(self.root.atoms())


def summary_of(atom):
    """The first paragraph of the atom's class docstring, on one line."""
    doc = (inspect.getdoc(type(atom)) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def clip(text, length):
    text = " ".join(str(text).split())
    return text if len(text) <= length else text[:length - 1] + "…"


def _pattern(flow):
    if isinstance(flow, linear_flow.Flow):
        return "linear"
    if isinstance(flow, graph_flow.Flow):
        return "graph"
    return "unordered"


def build_tree(flow, annotate=None):
    """The :class:`FlowNode` tree of an unloaded ``flow``; ``annotate``
    (an :class:`AtomNode` -> None) fills in what ran."""
    nodes = {}

    def atom_node(atom):
        kind = "retry" if isinstance(atom, tf_retry.Retry) else "task"
        node = AtomNode(atom.name, kind, summary_of(atom))
        if annotate is not None:
            annotate(node)
        return node

    def flow_node(flow):
        children = []
        for item, _meta in flow.iter_nodes():
            child = (flow_node(item) if isinstance(item, tf_flow.Flow)
                     else atom_node(item))
            nodes[id(item)] = child
            children.append(child)
        retry = atom_node(flow.retry) if flow.retry is not None else None
        links = [Link(nodes[id(u)], nodes[id(v)], _decider_name(meta))
                 for u, v, meta in flow.iter_links()]
        return FlowNode(flow.name, _pattern(flow), retry, children, links)

    return flow_node(flow)


def _decider_name(meta):
    decider = (meta or {}).get("decider")
    if decider is None:
        return None
    return getattr(decider, "__name__", None) or repr(decider)


def plan_view(operation):
    """The flow of ``operation`` (a name in :data:`plans.OPERATIONS`)
    before it runs; InvalidInput naming the operation if unknown."""
    factory = plans.factory_for(operation)
    return FlowView(title=f"{operation} (plan)", root=build_tree(factory()))


def job_view(job_uuid, conf=vmflow_conf.CONF):
    """The view of job ``job_uuid`` from the database; NotFound if no
    such job was posted."""
    record = jobs_lookup.load_job_record(job_uuid, conf)
    flow = progress.factory_flow(record.flow_detail)
    if flow is None:
        raise exception.NotFound(kind="flow factory of job", name=job_uuid)
    details = progress.atom_details(record.flow_detail)
    hosts = _hosts_by_step(record.events)
    timings = actions.run_totals(record.events)
    root = build_tree(flow, lambda node: _annotate(node, details, timings,
                                                   hosts))
    _recover_attempts(root, record.events)
    _add_spans(root, record.events)
    action = record.action
    return FlowView(
        title=f"{record.info['action']} of {record.server_label}",
        root=root, state=record.flow_detail.state,
        finished=action is not None and action.finish_time is not None,
        job_uuid=job_uuid, instance_uuid=record.info["instance_uuid"],
        progress=progress.flow_progress(record.flow_detail, flow),
        started=action.start_time if action is not None else None,
        ended=action.finish_time if action is not None else None)


def _hosts_by_step(events):
    """{task name: the hosts its runs ran on, in order, once each}."""
    hosts = {}
    for event in events:
        if event.host:
            hosts.setdefault(event.event, {})[event.host] = None
    return {name: tuple(found) for name, found in hosts.items()}


def _annotate(node, details, timings, hosts):
    detail = details.get(node.name)
    node.state = states.PENDING if detail is None else detail.state
    node.runs, node.seconds = timings.get(node.name, (0, None))
    node.hosts = hosts.get(node.name, ())
    if detail is None:
        return
    failure = detail.failure or getattr(detail, "revert_failure", None)
    if failure is not None:
        node.error = _failure_text(failure)
    if node.kind == "retry":
        node.attempts = [_attempt(value, failures)
                         for value, failures in detail.results]


def _recover_attempts(flow, events):
    """Give retries whose history TaskFlow dropped (a whole flow reverted:
    it resets its retries) the attempts the action's events show: each
    new run of the subflow's first task starts one, on the host it ran
    on (the value a host retry gave)."""
    for child in flow.children:
        if isinstance(child, FlowNode):
            _recover_attempts(child, events)
    retry = flow.retry
    if retry is None or retry.attempts or retry.state in (
            None, states.PENDING):
        return
    names = [atom.name for atom in flow.atoms() if atom.kind == "task"]
    if not names:
        return
    attempts, previous = [], None
    for event in events:
        if event.event not in names:
            continue
        resumed = (previous is not None and previous.event == event.event
                   and previous.result == actions.EVENT_INTERRUPTED)
        if event.event == names[0] and not resumed:
            attempts.append(Attempt(event.host or "?", (), None))
        if attempts and event.result in (actions.EVENT_FAILURE,
                                         actions.EVENT_REVERT_FAILURE):
            last = attempts[-1]
            if last.error is None:
                attempts[-1] = Attempt(last.value, (event.event,),
                                       _traceback_text(event.traceback))
        previous = event
    retry.attempts = attempts


def _add_spans(flow, events):
    """Each flow's time from its first step's start to its last step's end
    (now for one still running); a retry's is its flow's."""
    for child in flow.children:
        if isinstance(child, FlowNode):
            _add_spans(child, events)
    names = {atom.name for atom in flow.atoms() if atom.kind == "task"}
    runs = [event for event in events if event.event in names]
    if not runs:
        return
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    start = min(event.start_time for event in runs)
    end = max(event.finish_time or now for event in runs)
    flow.seconds = max(0.0, (end - start).total_seconds())
    if flow.retry is not None:
        flow.retry.seconds = flow.seconds


def _traceback_text(traceback):
    """``InjectedFault: message`` from an event's ``Failure: a.b.Kind:
    message`` first traceback line."""
    first = (traceback or "").strip().splitlines()[:1]
    text = first[0].removeprefix("Failure: ") if first else "failed"
    kind, _, message = text.partition(": ")
    return clip(f"{kind.rsplit('.', 1)[-1]}: {message}" if message
                else text, ERROR_LENGTH)


def _failure_text(failure):
    names = list(failure)
    kind = names[0].rsplit(".", 1)[-1] if names else "Error"
    return clip(f"{kind}: {failure.exception_str}", ERROR_LENGTH)


def _attempt(value, failures):
    failures = failures or {}
    errors = [_failure_text(failure) for failure in failures.values()]
    return Attempt(value=clip(_value_text(value), VALUE_LENGTH),
                   failed=tuple(failures), error=errors[0] if errors else None)


def _value_text(value):
    if isinstance(value, float):
        # A poll's deadline (epoch seconds): when it was.
        return datetime.datetime.fromtimestamp(
            value, datetime.timezone.utc).strftime("until %H:%M:%S")
    return str(value)
