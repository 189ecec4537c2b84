"""Power states that do not depend on the hypervisor (Nova's names).

Instance rows, tasks, the audit and the CLI speak only these; each driver
maps its hypervisor's states onto them (the libvirt driver:
:data:`vmflow.drivers.libvirt.guest.POWER_STATES`).
"""

NOSTATE = "nostate"      # unknown, or the domain does not run anywhere yet
RUNNING = "running"
PAUSED = "paused"
SHUTDOWN = "shutdown"    # powered off (or powering off)
CRASHED = "crashed"
SUSPENDED = "suspended"  # the guest suspended itself (to RAM)

ALL = (NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED)
