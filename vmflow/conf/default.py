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
    cfg.BoolOpt("resume_guests_state_on_host_boot",
                default=False,
                help="At runner start, start again the domains of servers "
                     "that should run (vm_state active, power_state "
                     "running, no task_state) but are shut off, as after a "
                     "host restart, and record their power state. Off: "
                     "such servers stay shut off until someone starts "
                     "them."),
    cfg.BoolOpt("allow_resize_to_same_host",
                default=False,
                help="Let a resize (not a cold migration) stay on the "
                     "server's own host when the scheduler finds room "
                     "there. Off: the destination is always another "
                     "host."),
    cfg.IntOpt("resize_confirm_window",
               default=0, min=0,
               help="Seconds after which a runner confirms a resized "
                    "server by itself, once its migration has been "
                    "finished that long (looked for every that many "
                    "seconds, at most 60; 0: never, the user confirms or "
                    "reverts)."),
]


def register_opts(conf):
    conf.register_opts(default_opts)


def list_opts():
    return {"DEFAULT": default_opts}
