"""Helpers of the web view tests: a ``vmflow web`` process, headless
Chromium, and a reader of the pages' DOM."""
import html.parser
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

from tests.conftest import BIN_DIR, REPO_ROOT, wait_until

CHROMIUM = "/usr/bin/chromium"
WINDOW_SIZE = "1280,900"
PNG_HEADER = b"\x89PNG\r\n\x1a\n"
ARTEFACTS_DIR = "VMFLOW_ARTEFACTS_DIR"
# Elements whose text is not shown (the page's CSS).
HIDDEN = ("style", "title", "head")
VOID = ("meta", "br", "img", "input", "link", "hr", "col", "wbr")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer:
    """``vmflow web`` on a free loopback port, as a user starts it."""

    def __init__(self, config_file, folder, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.output = folder / "web.out"
        self.errors = folder / "web.err"
        path = os.pathsep.join(filter(None, (REPO_ROOT,
                                             os.environ.get("PYTHONPATH"))))
        with open(self.output, "wb") as out, open(self.errors, "wb") as err:
            self.process = subprocess.Popen(
                [os.path.join(BIN_DIR, "vmflow"), "--config-file",
                 config_file, "web", "--port", str(self.port), *args],
                stdout=out, stderr=err, cwd=REPO_ROOT,
                env=dict(os.environ, PYTHONPATH=path))
        wait_until(self._started, 60, f"vmflow web on port {self.port}")
        assert self.process.poll() is None, self.errors.read_text()

    def _started(self):
        return "serving" in self.output.read_text() or (
            self.process.poll() is not None)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)

    def page_url(self, job_uuid=None):
        return self.url if job_uuid is None else f"{self.url}jobs/{job_uuid}"


def request(url, method="GET"):
    """(status, headers, body text) of one plain HTTP request."""
    try:
        with urllib.request.urlopen(urllib.request.Request(
                url, method=method), timeout=60) as response:
            return (response.status, response.headers,
                    response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read().decode("utf-8")


class Browser:
    """Headless Chromium, one process per page load (own profile)."""

    def __init__(self, folder):
        self.profile = folder / "chromium-profile"

    def _run(self, *args):
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", f"--user-data-dir={self.profile}", *args],
            capture_output=True, timeout=120, check=True)

    def page(self, url):
        """The :class:`Page` of ``url`` as Chromium built it."""
        dom = self._run("--dump-dom", url).stdout.decode("utf-8")
        return Page.read(dom)

    def screenshot(self, url, path):
        """A PNG of ``url`` at ``path`` (copied to $VMFLOW_ARTEFACTS_DIR if
        set); its bytes."""
        self._run(f"--screenshot={path}", f"--window-size={WINDOW_SIZE}",
                  url)
        print(f"screenshot of {url}: {path}")
        if os.environ.get(ARTEFACTS_DIR):
            shutil.copy(path, os.environ[ARTEFACTS_DIR])
        return path.read_bytes()


class Page(html.parser.HTMLParser):
    """What a test reads from a page: the refresh, the text of every
    element with an id, the cells of the jobs table's rows, the fill of
    every atom of the inline SVG graph, and every tag name used."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refresh = None
        self.texts = {}  # id -> text inside
        self.rows = {}  # job uuid -> [cell text]
        self.fills = {}  # atom name -> fill of its shape
        self.tags = set()
        self._open = []  # (tag, id or None)
        self._row = None
        self._atom = None

    @classmethod
    def read(cls, text):
        page = cls()
        page.feed(text)
        page.close()
        return page

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "meta" and attrs.get("http-equiv", "").lower() == "refresh":
            self.refresh = attrs.get("content")
        if tag == "tr" and "data-job" in attrs:
            self._row = self.rows.setdefault(attrs["data-job"], [])
        if tag == "td" and self._row is not None:
            self._row.append("")
        element_id = attrs.get("id")
        if tag == "g" and (element_id or "").startswith("atom-"):
            self._atom = element_id[len("atom-"):]
        elif self._atom and "fill" in attrs and self._atom not in self.fills:
            self.fills[self._atom] = attrs["fill"]
        if tag not in VOID:
            self._open.append((tag, element_id))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self._open:
            open_tag, element_id = self._open.pop()
            if element_id is not None and element_id.startswith("atom-"):
                self._atom = None
            if open_tag == "tr":
                self._row = None
            if open_tag == tag:
                break

    def handle_data(self, data):
        if any(tag in HIDDEN for tag, _ in self._open):
            return
        for _tag, element_id in self._open:
            if element_id is not None:
                self.texts[element_id] = self.texts.get(element_id, "") + data
        if self._row and any(tag == "td" for tag, _ in self._open):
            self._row[-1] += data

    def text_of(self, element_id):
        return " ".join(self.texts.get(element_id, "").split())

    def row(self, job_uuid):
        return [" ".join(cell.split()) for cell in self.rows[job_uuid]]
