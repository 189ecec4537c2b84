from oslo_config import cfg

ssh_group = cfg.OptGroup(
    "ssh", title="SSH",
    help="How vmflow reaches remote hosts for disk operations and copies.")

ssh_opts = [
    cfg.StrOpt("user", default="root",
               help="User for hosts registered without one."),
    cfg.StrOpt("key_file",
               help="Private key used to log in to hosts. Never logged."),
    cfg.StrOpt("known_hosts_file",
               default="~/.ssh/known_hosts",
               help="known_hosts file holding each host's key. A host whose "
                    "key is missing or differs is refused."),
    cfg.IntOpt("connect_timeout_seconds", default=10, min=1,
               help="Timeout for opening an SSH connection."),
    cfg.IntOpt("command_timeout_seconds", default=600, min=1,
               help="Timeout for one remote command."),
]


def register_opts(conf):
    conf.register_group(ssh_group)
    conf.register_opts(ssh_opts, group=ssh_group)


def list_opts():
    return {ssh_group: ssh_opts}
