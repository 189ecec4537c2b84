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
    cfg.FloatOpt("power_sync_interval_seconds", default=60.0, min=1.0,
                 max=86400.0,
                 help="How often a runner compares every instance's "
                      "power_state with its hypervisor (it also does at "
                      "start-up). Between two syncs the hypervisors' "
                      "lifecycle events keep it true; the sync catches "
                      "the events no runner heard."),
    cfg.FloatOpt("host_retry_seconds", default=5.0, min=0.1, max=3600.0,
                 help="How often a runner tries again to reach a host "
                      "whose hypervisor connection is lost (it disables "
                      "such a host with a reason starting 'AUTO: ' and "
                      "enables it again once the hypervisor answers), and "
                      "looks for hosts added or enabled meanwhile."),
]


def register_opts(conf):
    conf.register_group(engine_group)
    conf.register_opts(engine_opts, group=engine_group)


def list_opts():
    return {engine_group: engine_opts}
