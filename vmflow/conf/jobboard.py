from oslo_config import cfg

jobboard_group = cfg.OptGroup(
    "jobboard", title="Job board",
    help="Where operations are posted as jobs for vmflow-engine runners.")

jobboard_opts = [
    cfg.StrOpt("backend", default="sql", choices=["sql", "redis"],
               help="sql keeps jobs in the project database and needs no "
                    "other server; redis uses TaskFlow's Redis job board."),
    cfg.ListOpt("hosts", default=["127.0.0.1:6379"],
                help="host:port of the job board servers (redis)."),
    cfg.StrOpt("password", secret=True,
               help="Password of the job board server. Never logged."),
    cfg.StrOpt("namespace", default="vmflow",
               help="Namespace (key prefix) of this deployment's jobs."),
    cfg.IntOpt("claim_expiry_seconds", default=30, min=5, max=86400,
               help="A runner's claim on a job expires when not renewed "
                    "for this long, so another runner may take it over."),
]


def register_opts(conf):
    conf.register_group(jobboard_group)
    conf.register_opts(jobboard_opts, group=jobboard_group)


def list_opts():
    return {jobboard_group: jobboard_opts}
