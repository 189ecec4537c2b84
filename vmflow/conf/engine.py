from oslo_config import cfg

engine_group = cfg.OptGroup(
    "engine", title="Flow engine",
    help="How vmflow-engine runs the flows of the jobs it claims.")

engine_opts = [
    cfg.StrOpt("executor", default="serial",
               choices=["serial", "threaded"],
               help="serial runs one task at a time; threaded runs "
                    "independent tasks of a flow in parallel."),
    cfg.IntOpt("max_workers", default=4, min=1, max=256,
               help="Threads for the threaded executor, and jobs one "
                    "runner works on at once."),
]


def register_opts(conf):
    conf.register_group(engine_group)
    conf.register_opts(engine_opts, group=engine_group)


def list_opts():
    return {engine_group: engine_opts}
