import os
import subprocess

import pytest

from tests.conftest import BIN_DIR, REPO_ROOT
from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.conf import opts

SAMPLE = os.path.join(REPO_ROOT, "etc", "vmflow", "vmflow.conf.sample")
GENERATOR_CONF = os.path.join(REPO_ROOT, "etc", "vmflow",
                              "vmflow-config-generator.conf")


def test_committed_sample_matches_generator_output(tmp_path):
    output = tmp_path / "vmflow.conf.sample"
    subprocess.run([os.path.join(BIN_DIR, "oslo-config-generator"),
                    "--config-file", GENERATOR_CONF,
                    "--output-file", str(output)],
                   check=True, cwd=REPO_ROOT, timeout=60)
    with open(SAMPLE) as committed:
        assert output.read_text() == committed.read(), (
            "etc/vmflow/vmflow.conf.sample is stale: regenerate it with "
            "oslo-config-generator --config-file " + GENERATOR_CONF)


def test_every_group_is_listed_for_the_generator():
    groups = {getattr(group, "name", group) for group, _ in opts.list_opts()}
    assert groups == {"DEFAULT", "database", "libvirt", "scheduler", "quota",
                      "ssh", "jobboard", "engine"}


def test_database_defaults_to_sqlite_under_state_path(conf):
    assert vmflow_conf.database_url(conf) == (
        "sqlite:///" + os.path.join(conf.state_path, "vmflow.sqlite"))
    conf.set_override("connection", "postgresql://db/vmflow", "database")
    try:
        assert vmflow_conf.database_url(conf) == "postgresql://db/vmflow"
    finally:
        conf.clear_override("connection", "database")


def test_config_file_values_are_loaded(tmp_path, conf):
    config_file = tmp_path / "custom.conf"
    config_file.write_text("[libvirt]\nvirt_type = qemu\n"
                           "[scheduler]\nmax_alternates = 5\n")
    vmflow_conf.parse(config_files=[str(config_file)])
    assert conf.libvirt.virt_type == "qemu"
    assert conf.scheduler.max_alternates == 5


def test_secret_options_are_marked_secret():
    assert vmflow_conf.CONF.database._group._opts["connection"]["opt"].secret
    assert vmflow_conf.CONF.jobboard._group._opts["password"]["opt"].secret


@pytest.mark.parametrize("section, text, message", [
    ("libvirt", "virt_type = xen",
     "[libvirt] virt_type = 'xen': must be one of kvm, qemu"),
    ("engine", "executor = bogus",
     "[engine] executor = 'bogus': must be one of serial, threaded"),
    ("engine", "max_workers = 0",
     "[engine] max_workers = '0': must be at least 1"),
    ("quota", "ram = 2147483648",
     "[quota] ram = '2147483648': must be at most 2147483647"),
    ("libvirt", "poll_interval_seconds = fast",
     "[libvirt] poll_interval_seconds = 'fast': could not convert string "
     "to float: 'fast'"),
    ("database", "connection = postgres://u:sekrit@db/x",
     "[database] connection = '****': Can't load plugin"),
])
def test_a_bad_value_is_refused_at_parse_time_naming_it(
        tmp_path, conf, section, text, message):
    config_file = tmp_path / "bad.conf"
    config_file.write_text(f"[{section}]\n{text}\n")
    with pytest.raises(exception.InvalidConfig) as caught:
        vmflow_conf.parse(config_files=[str(config_file)])
    assert message in str(caught.value)
    assert "sekrit" not in str(caught.value)
    assert str(config_file) in str(caught.value)


def test_a_missing_or_unparsable_file_is_named(tmp_path, conf):
    with pytest.raises(exception.InvalidConfig, match="'/nonexistent.conf'"):
        vmflow_conf.parse(config_files=["/nonexistent.conf"])
    garbled = tmp_path / "garbled.conf"
    garbled.write_text("no section here\n")
    with pytest.raises(exception.InvalidConfig, match="cannot be parsed"):
        vmflow_conf.parse(config_files=[str(garbled)])
