from oslo_config import cfg

libvirt_group = cfg.OptGroup(
    "libvirt", title="Libvirt driver",
    help="How guests are defined and driven on each host's libvirtd.")

libvirt_opts = [
    cfg.StrOpt("virt_type",
               default="kvm",
               choices=["kvm", "qemu"],
               help="Domain type. Use qemu (TCG emulation) where KVM is not "
                    "usable."),
    cfg.IntOpt("wait_soft_reboot_seconds",
               default=120, min=0,
               help="How long a soft reboot waits for the guest to shut "
                    "down after an ACPI power-button press before falling "
                    "back to a hard reboot."),
    cfg.IntOpt("wait_running_seconds",
               default=60, min=1,
               help="How long to wait for a started domain to be running."),
    cfg.IntOpt("shutdown_timeout_seconds",
               default=60, min=0,
               help="How long a stop waits for a clean ACPI shutdown "
                    "before destroying the domain."),
    cfg.FloatOpt("poll_interval_seconds",
                 default=0.5, min=0.05,
                 help="Interval between polls of a domain's state."),
    cfg.IntOpt("connection_retries",
               default=2, min=0,
               help="How often to reopen a broken libvirt connection before "
                    "reporting the hypervisor unavailable."),
    cfg.StrOpt("network",
               default="",
               help="Libvirt network each guest's interface joins. Empty "
                    "gives each guest a user-mode (slirp) interface, which "
                    "needs no host networking setup."),
]


def register_opts(conf):
    conf.register_group(libvirt_group)
    conf.register_opts(libvirt_opts, group=libvirt_group)


def list_opts():
    return {libvirt_group: libvirt_opts}
