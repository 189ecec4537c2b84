"""Drawing a :class:`~vmflow.visual.graph.FlowView`: an indented text
tree, or a graphviz graph (DOT text, SVG, PNG) built with pydot and laid
out by graphviz's ``dot``.

In the graph every flow is a cluster, every atom a node filled with the
colour of its state (:data:`STATE_COLOURS`, shown in a legend), labelled
with its duration, hosts and error; retry controllers are hexagons listing
their attempts; a decider's edge carries the decider's name and is dashed
when it skipped its branch (whose atoms are IGNORE, drawn greyed out).

Every text put in the DOT source goes through :func:`dot_string`: pydot
passes a string that looks quoted (or like an HTML label) through as is,
so nothing a failure message says can end a label or start markup.
"""
import pydot
from taskflow import states

from vmflow import exception
from vmflow.visual import graph

PLAN = "PLAN"
BACKSLASH = "\u29f5"  # REVERSE SOLIDUS OPERATOR
# (fill, font colour) per atom state; PLAN: nothing ran (plan view).
STATE_COLOURS = {
    states.PENDING: ("#ffffff", "#000000"),
    states.RUNNING: ("#6baed6", "#000000"),
    states.SUCCESS: ("#74c476", "#000000"),
    states.FAILURE: ("#fb6a4a", "#000000"),
    states.REVERTING: ("#fd8d3c", "#000000"),
    states.REVERTED: ("#fdd0a2", "#000000"),
    states.REVERT_FAILURE: ("#a50f15", "#ffffff"),
    states.IGNORE: ("#e0e0e0", "#808080"),
    states.RETRYING: ("#9e9ac8", "#000000"),
    PLAN: ("#f7f7f7", "#000000"),
}
ATTEMPTS_SHOWN = 6
ERROR_WRAP = 48
SUMMARY_LENGTH = 72
FORMATS = ("text", "dot", "svg", "png")


def colours_of(state):
    return STATE_COLOURS.get(state or PLAN, STATE_COLOURS[PLAN])


def dot_string(text):
    """``text`` as a quoted DOT string that graphviz shows as is: quotes
    escaped, newlines as its centred line breaks, ``&`` as an entity
    (graphviz decodes entities in labels). A backslash is drawn as
    :data:`BACKSLASH`: graphviz reads every backslash as an escape
    (``\\N`` is the node's name), also one written as an entity or after
    another backslash. The text view keeps the exact text."""
    escaped = (str(text).replace("&", "&amp;").replace("\\", BACKSLASH)
               .replace('"', '\\"').replace("\r", "")
               .replace("\n", "\\n"))
    return f'"{escaped}"'


def duration_text(atom):
    if atom.seconds is None:
        return ""
    text = f"{atom.seconds:.2f} s"
    return f"{atom.runs} runs, {text}" if atom.runs > 1 else text


def attempt_lines(atom):
    """One line per try of a retry (the first and the latest ones when
    there are many: a poll's tries)."""
    attempts = list(enumerate(atom.attempts, 1))
    if len(attempts) > ATTEMPTS_SHOWN:
        shown = attempts[:2] + [None] + attempts[-(ATTEMPTS_SHOWN - 3):]
    else:
        shown = attempts
    lines = []
    for item in shown:
        if item is None:
            lines.append(f"… {len(attempts) - ATTEMPTS_SHOWN + 1} more")
            continue
        number, attempt = item
        outcome = f"failed: {attempt.error}" if attempt.error else (
            "failed" if attempt.failed else "ok")
        lines.append(f"try {number}: {attempt.value} {outcome}")
    return lines


def _heading(view):
    parts = [view.title]
    if view.state is not None:
        parts.append(view.state)
    if view.progress is not None:
        parts.append(f"{view.progress} steps done")
    if view.started is not None and view.ended is not None:
        parts.append(f"{(view.ended - view.started).total_seconds():.1f} s")
    if view.job_uuid:
        parts.append(f"job {view.job_uuid}")
    return " — ".join(parts)


# -- text ------------------------------------------------------------------

def to_text(view):
    """The view as an indented tree, one atom per line."""
    lines = [_heading(view)]
    _text_flow(view.root, 0, lines, condition=None)
    if view.progress is not None and view.progress.failing:
        lines.append(f"failing step: {view.progress.failing}: "
                     f"{view.progress.error}")
    return "\n".join(lines) + "\n"


def _text_flow(flow, depth, lines, condition):
    pad = "  " * depth
    heading = f"{pad}{flow.name} ({flow.pattern} flow)"
    if condition:
        heading += f" if {condition}"
    if flow.state == states.IGNORE:
        heading += " — skipped"
    if flow.seconds is not None:
        heading += f" · {flow.seconds:.2f} s"
    lines.append(heading)
    conditions = {id(link.target): link.decider for link in flow.links
                  if link.decider}
    if flow.retry is not None:
        _text_atom(flow.retry, depth + 1, lines)
    for child in flow.children:
        if isinstance(child, graph.FlowNode):
            _text_flow(child, depth + 1, lines, conditions.get(id(child)))
        else:
            _text_atom(child, depth + 1, lines, conditions.get(id(child)))


def _text_atom(atom, depth, lines, condition=None):
    pad = "  " * depth
    name = f"{atom.name} (retry)" if atom.kind == "retry" else atom.name
    if condition:
        name += f" if {condition}"
    fields = [f"{pad}{name:<{max(1, 44 - len(pad))}}",
              f"{atom.state:<14}" if atom.state
              else graph.clip(atom.summary, SUMMARY_LENGTH),
              duration_text(atom)]
    if atom.hosts:
        fields.append("on " + ", ".join(atom.hosts))
    lines.append(" ".join(field for field in fields if field).rstrip())
    for line in attempt_lines(atom):
        lines.append(f"{pad}    {line}")
    if atom.error:
        lines.append(f"{pad}    ! {atom.error}")


# -- graphviz --------------------------------------------------------------

class _DotBuilder:
    def __init__(self, view):
        self.view = view
        self.ids = {}
        self.clusters = {}
        self.dot = pydot.Dot(
            "vmflow", graph_type="digraph", compound="true", rankdir="TB",
            fontname=dot_string("Helvetica"), labelloc="t",
            label=dot_string(_heading(view)))
        self.dot.set_node_defaults(shape="box", style='"rounded,filled"',
                                   fontname=dot_string("Helvetica"),
                                   fontsize="10")
        self.dot.set_edge_defaults(fontname=dot_string("Helvetica"),
                                   fontsize="9")

    def build(self):
        self._add_flow(self.view.root, self.dot)
        self._add_legend()
        return self.dot

    def _node_id(self, atom):
        return self.ids.setdefault(id(atom), f"n{len(self.ids)}")

    def _add_flow(self, flow, parent):
        cluster = pydot.Cluster(f"c{len(self.clusters)}",
                                label=dot_string(self._flow_label(flow)),
                                style='"rounded,dashed"'
                                if flow.state == states.IGNORE
                                else "rounded",
                                fontcolor="#808080"
                                if flow.state == states.IGNORE else "#000000",
                                id=dot_string(f"flow-{flow.name}"))
        self.clusters[id(flow)] = cluster.get_name()
        parent.add_subgraph(cluster)
        if flow.retry is not None:
            self._add_atom(flow.retry, cluster)
        for child in flow.children:
            if isinstance(child, graph.FlowNode):
                self._add_flow(child, cluster)
            else:
                self._add_atom(child, cluster)
        if flow.retry is not None:
            for entry in _child_entries(flow):
                self._edge(flow.retry, entry, style="dotted",
                           arrowhead="open")
        for link in flow.links:
            self._add_link(link)

    @staticmethod
    def _flow_label(flow):
        label = f"{flow.name} ({flow.pattern})"
        if flow.seconds is not None:
            label += f" · {flow.seconds:.2f} s"
        return label + " — skipped" if flow.state == states.IGNORE else label

    def _add_atom(self, atom, parent):
        fill, font = colours_of(atom.state)
        style = ('"rounded,filled,dashed"' if atom.state == states.IGNORE
                 else '"rounded,filled"')
        tooltip = atom.summary + (f"\n{atom.error}" if atom.error else "")
        parent.add_node(pydot.Node(
            self._node_id(atom), label=dot_string(_atom_label(atom)),
            fillcolor=dot_string(fill), fontcolor=dot_string(font),
            style=style, shape="hexagon" if atom.kind == "retry" else "box",
            id=dot_string(f"atom-{atom.name}"),
            tooltip=dot_string(tooltip or atom.name)))

    def _add_link(self, link):
        attributes = {}
        if link.decider:
            skipped = _state_of(link.target) == states.IGNORE
            attributes = {
                "label": dot_string(link.decider
                                    + (" (skipped)" if skipped else "")),
                "style": "dashed" if skipped else "bold",
                "color": "#808080" if skipped else "#000000"}
        for source in _exits(link.source):
            for target in _entries(link.target):
                self._edge(source, target, **self._cluster_ends(
                    link.source, link.target), **attributes)

    def _cluster_ends(self, source, target):
        ends = {}
        if isinstance(source, graph.FlowNode):
            ends["ltail"] = self.clusters.get(id(source))
        if isinstance(target, graph.FlowNode):
            ends["lhead"] = self.clusters.get(id(target))
        return {key: value for key, value in ends.items() if value}

    def _edge(self, source, target, **attributes):
        self.dot.add_edge(pydot.Edge(self._node_id(source),
                                     self._node_id(target), **attributes))

    def _add_legend(self):
        legend = pydot.Cluster("legend", label=dot_string("states"),
                               style="rounded", id=dot_string("legend"))
        shown = [state for state in STATE_COLOURS
                 if state != PLAN or self.view.state is None]
        previous = None
        for state in shown:
            fill, font = colours_of(state)
            name = f"legend_{state.lower()}"
            legend.add_node(pydot.Node(
                name, label=dot_string(state), fillcolor=dot_string(fill),
                fontcolor=dot_string(font), id=dot_string(f"legend-{state}"),
                style='"rounded,filled,dashed"' if state == states.IGNORE
                else '"rounded,filled"'))
            if previous is not None:
                legend.add_edge(pydot.Edge(previous, name, style="invis"))
            previous = name
        self.dot.add_subgraph(legend)


def _atom_label(atom):
    lines = [atom.name]
    status = " · ".join(part for part in (
        atom.state, duration_text(atom)) if part)
    if status:
        lines.append(status)
    if atom.hosts:
        lines.append("on " + ", ".join(atom.hosts))
    for line in attempt_lines(atom):
        lines.extend(_wrap(line, ERROR_WRAP))
    if atom.error:
        lines.extend(_wrap("! " + atom.error, ERROR_WRAP))
    return "\n".join(lines)


def _wrap(text, width):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line] if line else lines


def _state_of(node):
    return node.state


def _child_entries(flow):
    """The atoms the children of ``flow`` start with (its retry aside)."""
    children = flow.children
    if not children:
        return []
    if flow.pattern == "linear":
        return _entries(children[0])
    targets = {id(link.target) for link in flow.links}
    return [atom for child in children if id(child) not in targets
            for atom in _entries(child)]


def _entries(node):
    if not isinstance(node, graph.FlowNode):
        return [node]
    if node.retry is not None:
        return [node.retry]
    return _child_entries(node)


def _exits(node):
    if not isinstance(node, graph.FlowNode):
        return [node]
    children = node.children
    if not children:
        return [node.retry] if node.retry is not None else []
    if node.pattern == "linear":
        return _exits(children[-1])
    sources = {id(link.source) for link in node.links}
    return [atom for child in children if id(child) not in sources
            for atom in _exits(child)]


def to_dot(view):
    """The view as DOT source text."""
    return _DotBuilder(view).build().to_string()


def to_svg(view):
    """The view as an SVG document (text)."""
    return _render(view, "svg").decode("utf-8")


def to_png(view):
    return _render(view, "png")


def _render(view, output_format):
    dot = _DotBuilder(view).build()
    try:
        return dot.create(prog="dot", format=output_format)
    except FileNotFoundError as error:
        raise exception.VmflowError(
            message="graphviz's dot program was not found (install "
                    f"Debian's graphviz package): {error}") from None


def render(view, output_format):
    """``text``/``dot``/``svg`` as text, ``png`` as bytes."""
    if output_format == "text":
        return to_text(view)
    if output_format == "dot":
        return to_dot(view)
    if output_format == "svg":
        return to_svg(view)
    if output_format == "png":
        return to_png(view)
    raise exception.InvalidInput(
        reason=f"unknown format {output_format!r}; known: "
               f"{', '.join(FORMATS)}")
