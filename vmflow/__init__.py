"""vmflow: virtual-machine operations on libvirt as persisted, revertible flows."""
