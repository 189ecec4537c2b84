"""Rendering of flow views: escaping, colours, retries and deciders, on
views built from real flow factories (no database)."""
import pydot
import pytest
from lxml import etree
from taskflow import states

from tests.functional import flowdraw
from vmflow import exception, flows
from vmflow.flows import build, reboot
from vmflow.visual import graph, render

HOSTILE = 'bad "quote" \\N back\\slash <script>alert(1)</script> &amp;\nnext'


def build_view(state=states.SUCCESS):
    view = graph.plan_view("build")
    view.state = state
    for atom in view.atoms():
        atom.state = state
    return view


def atom(view, name):
    return next(found for found in view.atoms() if found.name == name)


def test_dot_string_escapes_what_could_end_a_label():
    assert render.dot_string('a"b\\c\nd&') == '"a\\"b\u29f5c\\nd&amp;"'


def test_a_hostile_error_stays_text_in_dot_svg_and_the_tooltip():
    view = build_view(states.REVERTED)
    failed = atom(view, "CreateDisks")
    failed.state, failed.error = states.FAILURE, HOSTILE
    failed.hosts = ('h"1',)
    dot = render.to_dot(view)
    parsed = pydot.graph_from_dot_data(dot)[0]
    labels = [node.get("label") for node in parsed.get_nodes()]
    assert not any("<script>" in (label or "") and
                   not (label or "").startswith('"') for label in labels)
    svg = render.to_svg(view).encode()
    tree = etree.fromstring(svg)  # well-formed: nothing broke out
    assert not list(tree.iter("{http://www.w3.org/2000/svg}script"))
    nodes = flowdraw.svg_nodes(svg)
    fill, tooltip = nodes["CreateDisks"]
    assert fill == render.STATE_COLOURS[states.FAILURE][0]
    assert "<script>alert(1)</script>" in tooltip
    # Not graphviz's escapes (\\N: the node's name): drawn as ⧵.
    assert "⧵N back⧵slash" in tooltip
    words = flowdraw.svg_text(svg)
    assert "<script>alert(1)</script> &amp;" in words
    assert "⧵N back⧵slash" in words
    assert "on h\"1" in words


@pytest.mark.parametrize("state", sorted(render.STATE_COLOURS))
def test_every_state_has_its_colour_on_every_atom_and_in_the_legend(state):
    view = build_view(None if state == render.PLAN else state)
    svg = render.to_svg(view).encode()
    nodes = flowdraw.svg_nodes(svg)
    names = [found.name for found in flows.iter_atoms(build.get_build_flow())]
    assert sorted(nodes) == sorted(names)
    assert {fill for fill, _tip in nodes.values()} == {
        render.STATE_COLOURS[state][0]}
    tree = etree.fromstring(svg)
    legend = {group.get("id") for group in tree.iter(
        "{http://www.w3.org/2000/svg}g") if (group.get("id") or "")
        .startswith("legend-")}
    assert {f"legend-{known}" for known in render.STATE_COLOURS
            if known != render.PLAN} <= legend


def test_retry_attempts_are_listed_and_many_are_shortened():
    view = build_view()
    retry = atom(view, "RetryUntilRunning")
    retry.attempts = [graph.Attempt(f"v{number}", ("Poll",),
                                    "DomainNotRunningYet: not yet")
                      for number in range(1, 41)]
    retry.attempts[-1] = graph.Attempt("v40", (), None)
    lines = render.attempt_lines(retry)
    assert lines[0] == "try 1: v1 failed: DomainNotRunningYet: not yet"
    assert lines[2] == "… 35 more"
    assert lines[-1] == "try 40: v40 ok"
    assert len(lines) == render.ATTEMPTS_SHOWN


def test_the_reboot_deciders_are_edges_and_a_skipped_branch_is_dashed():
    view = graph.plan_view("reboot")
    view.state = states.SUCCESS
    soft = flows.find_subflow(reboot.get_reboot_flow(), "soft-reboot")
    soft_names = {found.name for found in flows.iter_atoms(soft)}
    for found in view.atoms():
        found.state = (states.IGNORE if found.name in soft_names
                       else states.SUCCESS)
    dot = render.to_dot(view)
    assert 'label="runs_soft_path (skipped)", style=dashed' in dot
    assert 'label="runs_hard_path", style=bold' in dot
    text = render.to_text(view)
    assert "soft-reboot (linear flow) if runs_soft_path — skipped" in text
    assert "hard-reboot (linear flow) if runs_hard_path\n" in text


def test_an_unknown_format_or_plan_is_refused_by_name():
    with pytest.raises(exception.InvalidInput, match="'gif'"):
        render.render(build_view(), "gif")
    with pytest.raises(exception.InvalidInput, match="'nosuch'"):
        graph.plan_view("nosuch")


def test_a_missing_dot_program_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(exception.VmflowError, match="graphviz's dot"):
        render.to_svg(build_view())
