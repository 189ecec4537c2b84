from oslo_config import cfg

default_opts = [
    cfg.StrOpt("state_path",
               default="/var/lib/vmflow",
               help="Directory where vmflow keeps its state: the default "
                    "SQLite database and the default instances path."),
]


def register_opts(conf):
    conf.register_opts(default_opts)


def list_opts():
    return {"DEFAULT": default_opts}
