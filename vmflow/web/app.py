"""The read-only web view: a Flask WSGI app (``vmflow web`` serves it
with waitress).

* ``/``: the recent jobs (state, operation, instance, progress, age);
* ``/jobs/<job uuid>``: one job, with its flow graph as inline SVG.

A page refreshes itself (``<meta http-equiv="refresh">``) only while what
it shows is unfinished, so a finished job's page stays still.

Read only: every method but GET and HEAD is refused with 405, OPTIONS
included (Flask's automatic OPTIONS answer is turned off), before any
view runs. Nothing secret is shown: no database URL, no credential-like
store value, no URL password (:mod:`.redact`: the data is masked before
it is formatted, and every body once more for the configured secrets).
Text is escaped by Jinja's autoescape; the inline SVG is graphviz's
output, which escapes every label.
"""
import dataclasses
import json
import uuid as uuidlib

import flask
import markupsafe
from werkzeug import exceptions as http_errors

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.visual import graph, render
from vmflow.web import jobs, redact

READ_METHODS = ("GET", "HEAD")
REFRESH_SECONDS = 2
SECURITY_HEADERS = {
    # No script, no frame, no form: the pages need none.
    "Content-Security-Policy": "default-src 'none'; style-src "
                               "'unsafe-inline'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(conf=vmflow_conf.CONF, refresh_seconds=REFRESH_SECONDS):
    """The WSGI app showing the jobs of the database ``conf`` names."""
    app = flask.Flask(__name__, static_folder=None)
    app.jinja_options = {**app.jinja_options, "autoescape": True,
                         "trim_blocks": True, "lstrip_blocks": True}
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    redactor = redact.Redactor(redact.secret_values(conf))
    pages = _Pages(conf, redactor, refresh_seconds)
    app.add_template_filter(age_text, "age")
    app.add_template_filter(time_text, "time")
    app.add_template_filter(json_text, "json_text")
    app.before_request(refuse_other_methods)
    app.after_request(lambda response: harden(response, redactor))
    app.register_error_handler(http_errors.HTTPException, error_page)
    for rule, endpoint, view in (("/", "jobs", pages.jobs),
                                 ("/jobs/<job_uuid>", "job", pages.job)):
        app.add_url_rule(rule, endpoint, view, methods=["GET"],
                         provide_automatic_options=False)
    return app


class _Pages:
    def __init__(self, conf, redactor, refresh_seconds):
        self.conf = conf
        self.redactor = redactor
        self.refresh_seconds = refresh_seconds

    def jobs(self):
        listed = jobs.recent_jobs(self.conf)
        unfinished = any(not job.finished for job in listed)
        return flask.render_template(
            "jobs.html", jobs=listed, now=jobs.now(),
            refresh=self.refresh_seconds if unfinished else None)

    def job(self, job_uuid):
        if not _is_uuid(job_uuid):
            flask.abort(404, f"no job {job_uuid}")
        try:
            detail = jobs.job_detail(job_uuid, self.conf)
        except exception.NotFound:
            flask.abort(404, f"no job {job_uuid}")
        self.redactor.fields(detail)
        if detail.progress is not None:
            detail.progress = dataclasses.replace(
                detail.progress, error=self.redactor.text(
                    detail.progress.error))
        svg, graph_error = self._graph(job_uuid)
        return flask.render_template(
            "job.html", job=detail, now=jobs.now(), svg=svg,
            graph_error=graph_error,
            store=self.redactor.data(detail.store),
            refresh=None if detail.finished else self.refresh_seconds)

    def _graph(self, job_uuid):
        """(the inline SVG of the job's flow, None) or (None, why not)."""
        try:
            view = graph.job_view(job_uuid, self.conf)
            for record in _view_records(view):
                self.redactor.fields(record)
            return inline_svg(render.to_svg(view)), None
        except exception.VmflowError as error:
            return None, self.redactor.text(error)


def _view_records(view):
    """The view and everything in it that holds text from the database."""
    yield view
    for atom in view.atoms():
        yield atom
        yield from atom.attempts


def _is_uuid(text):
    try:
        return str(uuidlib.UUID(text)) == text.lower()
    except ValueError:
        return False


def inline_svg(document):
    """The ``<svg>`` element of an SVG document (no XML prolog, doctype or
    comment before it), as markup to put in a page as is."""
    start = document.find("<svg")
    if start < 0:
        raise exception.VmflowError(message="graphviz gave no <svg> element")
    return markupsafe.Markup(document[start:])


def refuse_other_methods():
    if flask.request.method not in READ_METHODS:
        flask.abort(405, valid_methods=list(READ_METHODS))


def harden(response, redactor):
    """Security headers, and the configured secrets masked in the body."""
    response.headers.update(SECURITY_HEADERS)
    if response.mimetype == "text/html" and not response.direct_passthrough:
        body = response.get_data(as_text=True)
        masked = body
        for secret in redactor.secrets:
            for form in (secret, str(markupsafe.escape(secret))):
                masked = masked.replace(form, redact.MASK)
        if masked != body:
            response.set_data(masked)
    return response


def error_page(error):
    """Werkzeug's error response (its status and headers: a 405's Allow)
    with a page of ours."""
    response = error.get_response()
    response.set_data(flask.render_template(
        "error.html", code=error.code, name=error.name,
        description=error.description))
    return response


def age_text(started, now):
    """How long ago ``started`` was: ``12 s``, ``5 min``, ``3 h``, ``2 d``."""
    if started is None:
        return ""
    seconds = max(0, int((now - started).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def json_text(value):
    """A store value as JSON text (escaped by the template, unlike Flask's
    ``tojson``, which shows ``<`` as ``\\u003c``)."""
    return json.dumps(value, sort_keys=True)


def time_text(value):
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")
