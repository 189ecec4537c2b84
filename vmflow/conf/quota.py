from oslo_config import cfg

quota_group = cfg.OptGroup(
    "quota", title="Quota",
    help="Default per-project limits, used where a project has none set.")

# The largest value the quota_limits.hard_limit column (Integer) holds.
LIMIT_MAX = 2**31 - 1

quota_opts = [
    cfg.IntOpt("instances", default=10, min=-1, max=LIMIT_MAX,
               help="Instances per project (-1: unlimited)."),
    cfg.IntOpt("cores", default=20, min=-1, max=LIMIT_MAX,
               help="vCPUs per project (-1: unlimited)."),
    cfg.IntOpt("ram", default=51200, min=-1, max=LIMIT_MAX,
               help="MiB of memory per project (-1: unlimited)."),
]


def register_opts(conf):
    conf.register_group(quota_group)
    conf.register_opts(quota_opts, group=quota_group)


def list_opts():
    return {quota_group: quota_opts}
