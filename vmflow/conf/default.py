from oslo_config import cfg

default_opts = [
    cfg.StrOpt("state_path",
               default="/var/lib/vmflow",
               help="Directory where vmflow keeps its state: the default "
                    "SQLite database and the default instances path."),
    cfg.StrOpt("compute_driver",
               default="libvirt",
               help="Hypervisor driver of the hosts: the name of a "
                    "'vmflow.drivers' entry point."),
]


def register_opts(conf):
    conf.register_opts(default_opts)


def list_opts():
    return {"DEFAULT": default_opts}
