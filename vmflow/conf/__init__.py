"""Configuration: one module per option group.

``CONF`` is the process-wide :class:`oslo_config.cfg.ConfigOpts` with every
group registered; :func:`parse` loads ``--config-file`` arguments into it
and checks every value (:mod:`vmflow.conf.checks`).
"""
import os

from oslo_config import cfg

from vmflow.conf import (checks, database, default, engine, jobboard, libvirt,
                         quota, scheduler, ssh)

MODULES = (default, database, libvirt, scheduler, quota, ssh, jobboard,
           engine)

CONF = cfg.CONF


def register_all(conf):
    for module in MODULES:
        module.register_opts(conf)


register_all(CONF)


def parse(argv=(), config_files=None, conf=CONF):
    """Load and check the configuration; ``config_files`` None means the
    default search. Raises InvalidConfig (one line) on the first problem."""
    if config_files is None:
        config_files = cfg.find_config_files(project="vmflow")
    checks.load(conf, argv, config_files)
    for module in MODULES:
        checks.validate(conf, module.list_opts())
    return conf


def database_url(conf=CONF):
    if conf.database.connection:
        return conf.database.connection
    return "sqlite:///" + os.path.join(conf.state_path, "vmflow.sqlite")
