"""Libvirt driver, split by concern: connection, guest, config, image backend."""
