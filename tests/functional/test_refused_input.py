"""Every input and configuration the console scripts refuse, in one table.

Each case runs the installed ``vmflow`` or ``vmflow-engine`` on a private
copy of a database with one of everything, and checks what a refusal
promises: exactly one line on stderr naming the bad value, exit status 1
(2 for what argparse refuses), nothing on stdout, and nothing written --
every file under the test's folder byte for byte (the SQLite database
included), or every row of every table on PostgreSQL.
"""
import os
import re
import shutil
import subprocess

import pytest
import sqlalchemy

from tests import databases
from tests.conftest import BIN_DIR, Cli, write_config
from tests.functional.conftest import populate

ONE_LINE_ERROR = re.compile(r"^vmflow(-engine)?( [a-z-]+)*: error: ")
SECRET = "sekrit"
DEAD_SERVERS = {
    "postgresql":
        f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/vmflow",
    "mariadb": f"mysql+pymysql://root:{SECRET}@127.0.0.1:1/vmflow",
}
SIZES = ("--vcpus", "2", "--memory-mb", "512", "--disk-gb", "5")
FREE_URI = "test://{node_xml}"
TOO_BIG_FOR_SQLITE = str(2**63)
INTEGER_MAX_PLUS_ONE = str(2**31)


def host_add(name, uri, *extra):
    return ("host", "add", name, "--uri", uri) + SIZES + extra


def flavor_create(name, vcpus="1", ram="64", disk="1"):
    return ("flavor", "create", name, "--vcpus", vcpus, "--ram", ram,
            "--disk", disk)


def case(args, status, fragment, config=None, program="vmflow", id=None):
    """One refused command: what it runs and what its one line names.
    ``config`` adds sections to the configuration (a second file)."""
    return pytest.param(program, args, status, fragment, config or {}, id=id)


def bad_option(group, option, value, fragment, program="vmflow",
               args=("flavor", "list")):
    return case(args, 1, fragment, {group: {option: value}}, program,
                id=f"{program}-{group}-{option}")


DEAD_REDIS = {"jobboard": {"backend": "redis", "hosts": "127.0.0.1:1"}}
MISSING_STATE = {"DEFAULT": {"state_path": "{tmp}/missing/state"}}
READ_ONLY = [("flavor", "list"), ("host", "list"), ("host", "show", "local"),
             ("image", "list"), ("server", "list"), ("quota", "show", "demo"),
             ("job", "list"), ("audit",), ("db", "version"),
             flavor_create("f2"), ("web", "--port", "1")]

CASES = [
    # -- configuration (issue 8 items 2 and 3) ------------------------------
    *(bad_option(*row, program=program, args=args)
      for program, args in (("vmflow", ("flavor", "list")),
                            ("vmflow-engine", ("--check",)))
      for row in (
          ("libvirt", "virt_type", "xen",
           "[libvirt] virt_type = 'xen': must be one of kvm, qemu"),
          ("engine", "executor", "bogus",
           "[engine] executor = 'bogus': must be one of serial, threaded"),
          ("engine", "max_workers", "0",
           "[engine] max_workers = '0': must be at least 1"),
          ("quota", "ram", INTEGER_MAX_PLUS_ONE,
           f"[quota] ram = '{INTEGER_MAX_PLUS_ONE}': must be at most"),
          ("libvirt", "poll_interval_seconds", "fast",
           "[libvirt] poll_interval_seconds = 'fast'"),
          ("database", "connection", f"postgres://u:{SECRET}@db/x",
           "[database] connection = '****'"))),
    case(("server", "create", "vm1", "--flavor", "tiny", "--image", "cirros",
          "--wait"), 1, "[libvirt] virt_type = 'xen'",
         {"libvirt": {"virt_type": "xen"}}, id="vmflow-build-with-xen"),
    case(("--config-file", "/nonexistent.conf", "flavor", "list"), 1,
         "'/nonexistent.conf'", id="vmflow-missing-config-file"),
    case(("--config-file", "{garbled}", "flavor", "list"), 1,
         "'{garbled}' cannot be parsed", id="vmflow-unparsable-config"),
    case(("--config-file", "/nonexistent.conf", "--check"), 1,
         "'/nonexistent.conf'", program="vmflow-engine",
         id="engine-missing-config-file"),
    case(("--config-file", "{garbled}", "--once"), 1,
         "'{garbled}' cannot be parsed", program="vmflow-engine",
         id="engine-unparsable-config"),
    case(("--once",), 1, "[engine] executor = 'bogus'",
         {"engine": {"executor": "bogus"}}, "vmflow-engine",
         id="engine-runner-bad-executor"),
    # -- host add (item 4) ---------------------------------------------------
    case(host_add("h2", "", "--instances-path", "{instances}"), 1,
         "libvirt URI '' is empty", id="host-empty-uri"),
    case(host_add("h2", "   ", "--instances-path", "{instances}"), 1,
         "is empty", id="host-blank-uri"),
    case(host_add("h2", "default", "--instances-path", "{instances}"), 1,
         "libvirt URI 'default' is not", id="host-uri-without-scheme"),
    case(host_add("h2", "test:///default", "--instances-path",
                  "{instances}"), 1,
         "libvirt URI 'test:///default' is already host 'local'",
         id="host-same-uri"),
    case(host_add("h2", "TEST+unix:///default/", "--instances-path",
                  "{instances}"), 1,
         "'TEST+unix:///default/' is already host 'local'",
         id="host-same-uri-spelled-otherwise"),
    case(host_add("h2", FREE_URI, "--instances-path", "/nonexistent/dir"), 1,
         "instances path '/nonexistent/dir' does not exist",
         id="host-missing-instances-path"),
    case(host_add("h2", FREE_URI, "--instances-path", "{regular_file}"), 1,
         "instances path '{regular_file}' does not exist or is not a "
         "directory", id="host-instances-path-is-a-file"),
    case(host_add("h2", FREE_URI), 1,
         "instances path '{tmp}/state/instances' does not exist",
         id="host-default-instances-path-missing"),
    case(host_add("h2", FREE_URI, "--instances-path", "/srv", "--ssh",
                  "root@127.0.0.1:1"), 1,
         "cannot reach host h2 (root@127.0.0.1:1) over SSH",
         {"ssh": {"known_hosts_file": "{known_hosts}"}},
         id="host-remote-instances-path-unreachable"),
    case(host_add("h2", "qemu+tcp://127.0.0.1:1/system", "--instances-path",
                  "{instances}"), 1, "qemu+tcp://127.0.0.1:1/system",
         id="host-uri-does-not-answer"),
    case(host_add("h2", "test:///default", "--instances-path", "/srv/../etc"),
         1, "'/srv/../etc'", id="host-instances-path-dotdot"),
    case(host_add("h2", "test:///default", "--ssh", "nobody"), 1,
         "'nobody'", id="host-bad-ssh-endpoint"),
    case(("host", "add", "h2", "--uri", "test:///default", "--vcpus", "-2",
          "--memory-mb", "512", "--disk-gb", "5"), 2,
         "argument --vcpus: value '-2' must be at least 1",
         id="host-negative-vcpus"),
    case(("host", "add", "h2", "--uri", "test:///default", "--vcpus", "2",
          "--memory-mb", "0", "--disk-gb", "5"), 2,
         "argument --memory-mb: value '0'", id="host-zero-memory"),
    case(host_add("local", "test:///default"), 1, "'local' already exists",
         id="host-name-taken"),
    case(host_add("a/b", "test:///default"), 1, "'a/b'", id="host-slash"),
    case(host_add("..", "test:///default"), 1, "'..'", id="host-dotdot"),
    case(host_add("bad\x07name", "test:///default"), 1, r"'bad\x07name'",
         id="host-control-character"),
    case(host_add("h" * 64, "test:///default"), 1, "'" + "h" * 64,
         id="host-name-too-long"),
    case(("host", "show", "ghost"), 1, "host 'ghost' not found",
         id="host-show-unknown"),
    case(("host", "set", "ghost", "--disable"), 1, "'ghost'",
         id="host-set-unknown"),
    # -- numbers beyond their column (item 5; PostgreSQL below) --------------
    case(flavor_create("f2", ram=TOO_BIG_FOR_SQLITE), 2,
         f"argument --ram: value {TOO_BIG_FOR_SQLITE} must be at most "
         "2147483647 (the most column flavors.ram_mb holds)",
         id="flavor-ram-beyond-sqlite"),
    case(flavor_create("f2", disk=INTEGER_MAX_PLUS_ONE), 2,
         f"argument --disk: value {INTEGER_MAX_PLUS_ONE} must be at most",
         id="flavor-disk-beyond-integer"),
    case(("host", "add", "h2", "--uri", FREE_URI, "--vcpus",
          TOO_BIG_FOR_SQLITE, "--memory-mb", "1", "--disk-gb", "1"), 2,
         f"argument --vcpus: value {TOO_BIG_FOR_SQLITE}",
         id="host-vcpus-beyond-sqlite"),
    case(("quota", "set", "demo", "--ram", TOO_BIG_FOR_SQLITE), 2,
         f"argument --ram: limit {TOO_BIG_FOR_SQLITE} must be at most",
         id="quota-ram-beyond-sqlite"),
    case(("quota", "set", "demo", "--cores", "-5"), 2, "'-5'",
         id="quota-below-unlimited"),
    case(("quota", "set", "demo", "--instances", "many"), 2,
         "limit 'many' is not a whole number", id="quota-not-a-number"),
    case(flavor_create("f2", ram="-64"), 2, "'-64'", id="flavor-negative-ram"),
    case(flavor_create("tiny"), 1, "flavor 'tiny' already exists",
         id="flavor-name-taken"),
    case(flavor_create("f/2"), 1, "'f/2'", id="flavor-slash"),
    case(("flavor", "delete", "ghost"), 1, "'ghost'",
         id="flavor-delete-unknown"),
    case(("quota", "set", "de/mo", "--cores", "5"), 1, "'de/mo'",
         id="quota-bad-project"),
    case(("quota", "show", "x" * 70), 1, "'" + "x" * 70,
         id="quota-project-too-long"),
    # -- image add (item 6) ---------------------------------------------------
    case(("image", "add", "img2", "--file", "{data_file_qcow2}"), 1,
         "'{data_file_qcow2}' keeps its data in an external file",
         id="image-external-data-file"),
    case(("image", "add", "img2", "--file", "{empty}"), 1,
         "'{empty}' is empty", id="image-empty"),
    case(("image", "add", "img2", "--file", "{empty}", "--format", "raw"), 1,
         "'{empty}' is empty", id="image-empty-as-raw"),
    case(("image", "add", "img2", "--file", "{short_text}"), 1,
         "'{short_text}' is 20 bytes, not a whole number of 512-byte sectors",
         id="image-short-text"),
    case(("image", "add", "img2", "--file", "{sector_text}", "--format",
          "raw"), 1, "'{sector_text}' starts with a sector of plain text",
         id="image-text-as-raw"),
    case(("image", "add", "img2", "--file", "{short_text}", "--format",
          "qcow2"), 1, "'{short_text}' is raw, not qcow2",
         id="image-text-as-qcow2"),
    case(("image", "add", "img2", "--file", "{qcow2}", "--format", "raw"), 1,
         "'{qcow2}' is qcow2, not raw", id="image-qcow2-as-raw"),
    case(("image", "add", "img2", "--file", "{raw}", "--format", "qcow2"), 1,
         "'{raw}' is raw, not qcow2", id="image-raw-as-qcow2"),
    case(("image", "add", "img2", "--file", "{backed_qcow2}"), 1,
         "'{backed_qcow2}' has a backing file", id="image-backing-file"),
    case(("image", "add", "img2", "--file", "{broken_qcow2}"), 1,
         "'{broken_qcow2}' is not a readable disk image",
         id="image-broken-qcow2"),
    case(("image", "add", "img2", "--file", "/nonexistent/disk.qcow2"), 1,
         "'/nonexistent/disk.qcow2'", id="image-missing-file"),
    case(("image", "add", "cirros", "--file", "{qcow2}"), 1, "'cirros'",
         id="image-name-taken"),
    case(("image", "add", "img2", "--file", "{qcow2}", "--kernel",
          "/nonexistent/vmlinuz"), 1, "'/nonexistent/vmlinuz'",
         id="image-missing-kernel"),
    case(("image", "add", "img2", "--file", "{qcow2}", "--format", "vmdk"),
         2, "'vmdk'", id="image-unknown-format"),
    case(("image", "add", "../img", "--file", "{qcow2}"), 1, "'../img'",
         id="image-dotdot"),
    case(("image", "delete", "ghost"), 1, "'ghost'",
         id="image-delete-unknown"),
    # -- servers and jobs ----------------------------------------------------
    case(("server", "create", "vm1", "--flavor", "nope", "--image",
          "cirros"), 1, "flavor 'nope' not found", id="server-unknown-flavor"),
    case(("server", "create", "vm1", "--flavor", "tiny", "--image", "nope"),
         1, "image 'nope' not found", id="server-unknown-image"),
    case(("server", "create", "vm1", "--flavor", "tiny", "--image", "cirros",
          "--host", "nohost"), 1, "host 'nohost' not found",
         id="server-unknown-host"),
    case(("server", "create", "../vm1", "--flavor", "tiny", "--image",
          "cirros"), 1, "invalid name '../vm1'", id="server-dotdot"),
    case(("server", "create", "<vm/>", "--flavor", "tiny", "--image",
          "cirros"), 1, "invalid name '<vm/>'", id="server-markup"),
    case(("server", "create", "vm1", "--image", "cirros"), 2,
         "the following arguments are required: --flavor",
         id="server-without-flavor"),
    case(("server", "delete", "ghost"), 1, "server 'ghost' not found",
         id="server-delete-unknown"),
    case(("server", "show", "ghost"), 1, "server 'ghost' not found",
         id="server-show-unknown"),
    case(("job", "show", "no-such-job"), 1, "job 'no-such-job' not found",
         id="job-show-unknown"),
    # -- the web view ----------------------------------------------------------
    case(("web", "--port", "0"), 2,
         "argument --port: port '0' must be from 1 to 65535",
         id="web-port-zero"),
    case(("web", "--port", "65536"), 2, "port '65536' must be from 1 to",
         id="web-port-too-big"),
    case(("web", "--port", "http"), 2, "port 'http' is not a whole number",
         id="web-port-not-a-number"),
    case(("web", "--host", "example.com"), 2,
         "argument --host: host 'example.com' is not an IP address or "
         "localhost", id="web-host-name"),
    *(case(("web", "--host", host), 1,
           f"--host {host} is not a loopback address; the web view has no "
           "authentication: add --allow-remote", id=f"web-remote-{host}")
      for host in ("0.0.0.0", "::", "192.0.2.1")),
    # -- a state_path without a database (item 9) -----------------------------
    *(case(args, 1, "{tmp}/missing/state/vmflow.sqlite does not exist; run "
           "'vmflow db sync'", MISSING_STATE, id="missing-db-" + "-".join(
               args[:2]))
      for args in READ_ONLY),
    case(("--check",), 1, "{tmp}/missing/state/vmflow.sqlite does not exist",
         MISSING_STATE, "vmflow-engine", id="missing-db-engine-check"),
    # -- a job board that does not answer (item 7) ---------------------------
    *(case(args, 1, "job board redis 127.0.0.1:1 (namespace 'vmflow') is "
           "unreachable", DEAD_REDIS, program,
           id=f"dead-redis-{program}-" + "-".join(args[:2]))
      for program, args in (
          ("vmflow", ("server", "create", "vm2", "--flavor", "tiny",
                      "--image", "cirros")),
          ("vmflow", ("server", "create", "vm2", "--flavor", "tiny",
                      "--image", "cirros", "--wait")),
          ("vmflow", ("job", "list")))),
    # -- a database server that does not answer (item 8) ----------------------
    *(case(args, 1, "cannot use database "
           + url.replace(SECRET, "***").rsplit("/", 1)[0],
           {"database": {"connection": url}},
           id=f"dead-{kind}-" + "-".join(args))
      for kind, url in DEAD_SERVERS.items()
      for args in (("db", "sync"), ("db", "version"), ("flavor", "list"))),
]


def formatted(value, names):
    if isinstance(value, dict):
        return {key: formatted(item, names) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [formatted(item, names) for item in value]
    return value.format(**names)


def run(program, config_files, args):
    options = [arg for path in config_files
               for arg in ("--config-file", path)]
    return subprocess.run([os.path.join(BIN_DIR, program), *options, *args],
                          capture_output=True, text=True, timeout=120,
                          check=False)


def every_file(folder):
    """Path -> bytes of every file below ``folder``."""
    found = {}
    for directory, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as content:
                found[path] = content.read()
    return found


def assert_refused(result, status, fragment):
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert ONE_LINE_ERROR.match(lines[0]), lines[0]
    assert fragment in lines[0]
    assert SECRET not in result.stderr
    assert result.returncode == status, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("program, args, status, fragment, config", CASES)
def test_refused_with_one_line_and_nothing_written(
        tmp_path, disk_files, populated_state, program, args, status, fragment,
        config):
    shutil.copytree(populated_state, tmp_path / "state")
    names = dict(disk_files, tmp=str(tmp_path))
    config_files = [write_config(tmp_path / "vmflow.conf", {
        "DEFAULT": {"state_path": tmp_path / "state"}})]
    if config:
        config_files.append(write_config(tmp_path / "extra.conf",
                                         formatted(config, names)))
    before = every_file(tmp_path)
    result = run(program, config_files, formatted(args, names))
    assert_refused(result, status, fragment.format(**names))
    assert every_file(tmp_path) == before


def table_dump(url):
    """Every row of every table (TaskFlow's included), for comparison."""
    engine = sqlalchemy.create_engine(url)
    try:
        metadata = sqlalchemy.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {name: sorted(map(repr, connection.execute(
                        table.select())))
                    for name, table in metadata.tables.items()}
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def postgresql_config(tmp_path_factory, disk_files):
    folder = tmp_path_factory.mktemp("postgresql")
    with databases.private_database("postgresql", folder,
                                    sync=False) as url:
        config_file = write_config(folder / "vmflow.conf", {
            "DEFAULT": {"state_path": folder / "state"},
            "database": {"connection": url}})
        populate(Cli(config_file), disk_files)
        yield config_file, url


@pytest.mark.parametrize("args, fragment", [
    (flavor_create("big", ram=INTEGER_MAX_PLUS_ONE),
     f"argument --ram: value {INTEGER_MAX_PLUS_ONE} must be at most "
     "2147483647"),
    (("host", "add", "big", "--uri", FREE_URI, "--vcpus", "2",
      "--memory-mb", INTEGER_MAX_PLUS_ONE, "--disk-gb", "1"),
     f"argument --memory-mb: value {INTEGER_MAX_PLUS_ONE}"),
    (("host", "add", "big", "--uri", FREE_URI, "--vcpus", str(2**63 - 1),
      "--memory-mb", "1", "--disk-gb", "1"),
     f"argument --vcpus: value {2**63 - 1}"),
    (("quota", "set", "demo", "--ram", str(2**63 - 1)),
     f"argument --ram: limit {2**63 - 1} must be at most 2147483647"),
], ids=["flavor-ram", "host-memory", "host-vcpus", "quota-ram"])
def test_numbers_beyond_the_column_are_refused_on_postgresql(
        postgresql_config, disk_files, args, fragment):
    config_file, url = postgresql_config
    before = table_dump(url)
    result = run("vmflow", [config_file], formatted(args, disk_files))
    assert_refused(result, 2, fragment)
    assert table_dump(url) == before
