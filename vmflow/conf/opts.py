"""Entry point for oslo-config-generator (``oslo.config.opts``)."""
from vmflow import conf as vmflow_conf


def list_opts():
    merged = {}
    for module in vmflow_conf.MODULES:
        merged.update(module.list_opts())
    return [(group, opts) for group, opts in merged.items()]
