"""Checks of ``vmflow flow show`` output against what TaskFlow persisted.

The expected atoms come from the operation's flow factory and their
states from TaskFlow's own tables (``atomdetails`` of the job's logbook),
read here with plain SQL: never from the code that draws.
"""
import struct

import sqlalchemy
from lxml import etree

from vmflow import flows
from vmflow.persistence import api
from vmflow.visual import render

SVG = "{http://www.w3.org/2000/svg}"
XLINK_TITLE = "{http://www.w3.org/1999/xlink}title"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def persisted_states(database_url, job_uuid):
    """{atom name: state} of the job's flow detail, from TaskFlow's tables
    (its injector atom left out)."""
    engine = api.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text(
                "SELECT a.name, a.state FROM atomdetails a "
                "JOIN flowdetails f ON a.parent_uuid = f.uuid "
                "WHERE f.parent_uuid = :job"), {"job": job_uuid}).all()
    finally:
        engine.dispose()
    return {name: state for name, state in rows
            if not name.startswith("_TaskFlow_")}


def atom_names(factory):
    return [atom.name for atom in flows.iter_atoms(factory())]


def svg_nodes(svg_bytes):
    """{atom name: (fill colour, tooltip)} of an SVG drawn by flow show
    (parsing it proves it is well-formed XML)."""
    tree = etree.fromstring(svg_bytes)
    nodes = {}
    for group in tree.iter(f"{SVG}g"):
        ident = group.get("id") or ""
        if group.get("class") != "node" or not ident.startswith("atom-"):
            continue
        fills = [shape.get("fill") for shape in group.iter()
                 if shape.tag in (f"{SVG}path", f"{SVG}polygon")
                 and shape.get("fill") not in (None, "none")]
        link = next(group.iter(f"{SVG}a"), None)
        nodes[ident[len("atom-"):]] = (
            fills[0] if fills else None,
            link.get(XLINK_TITLE) if link is not None else None)
    return nodes


def svg_text(svg_bytes):
    tree = etree.fromstring(svg_bytes)
    return "\n".join(" ".join(text.itertext())
                     for text in tree.iter(f"{SVG}text"))


def png_size(data):
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_drawing(cli, job_uuid, factory, database_url, tmp_path,
                  label="flow"):
    """Draw job ``job_uuid`` as text, SVG and PNG and check each against
    the persisted states; returns (states, svg bytes, text)."""
    expected = atom_names(factory)
    states = persisted_states(database_url, job_uuid)
    # A job no runner loaded has no atom details yet: all pending.
    assert set(states) <= set(expected), set(states) - set(expected)

    text = cli("flow", "show", job_uuid).stdout
    lines = text.splitlines()
    for name in expected:
        state = states.get(name, "PENDING")
        assert any(line.split()[:1] == [name] and state in line.split()
                   or line.split()[:2] == [name, "(retry)"]
                   and state in line.split() for line in lines), (
            name, state, text)

    svg_path = tmp_path / f"{label}.svg"
    cli("flow", "show", job_uuid, "--format", "svg", "-o", str(svg_path))
    svg = svg_path.read_bytes()
    nodes = svg_nodes(svg)
    assert sorted(nodes) == sorted(expected)
    for name in expected:
        state = states.get(name, "PENDING")
        assert nodes[name][0] == render.STATE_COLOURS[state][0], (
            name, state, nodes[name])

    png_path = tmp_path / f"{label}.png"
    cli("flow", "show", job_uuid, "--format", "png", "-o", str(png_path))
    png = png_path.read_bytes()
    width, height = png_size(png)
    assert width >= 300 and height >= 300 and len(png) > 10_000, (
        width, height, len(png))
    return states, svg, text
