"""Hypervisor drivers: an abstract base and the libvirt implementation."""
