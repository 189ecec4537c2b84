"""Disks of instances: cached base images plus one qcow2 overlay each.

Layout under a host's instances path::

    _base/<key>            base image, copied once per host (raw or qcow2)
    _base/<key>.kernel     kernel and initrd of direct-kernel-boot images
    _base/<key>.initrd
    <instance uuid>/disk         qcow2 overlay backed by _base/<key>
    <instance uuid>/console.log  serial console output
    <instance uuid>_resize/      the disk as it was before a resize on the
                                 same host (kept until confirm or revert)

``<key>`` is derived from the image's uuid (or id), so every host names the
same image the same way. Files are written under a temporary name and
renamed into place, so a concurrent or interrupted copy never leaves a
half-written base image or overlay behind under its real name.

All work goes through a runner (:mod:`vmflow.drivers.remote.runner`), so
the same code manages a local host and a remote one over SSH.
"""
import hashlib
import json
import os
import uuid as uuid_lib

from vmflow import exception
from vmflow.drivers.remote import runner as remote_runner
from vmflow.drivers.remote import transfer

BASE_DIR = "_base"
DISK_NAME = "disk"
CONSOLE_LOG_NAME = "console.log"
STASH_SUFFIX = "_resize"
DISK_FORMATS = ("qcow2", "raw")
GiB = 1024 ** 3
QEMU_IMG_TIMEOUT = 120


def base_key(image):
    """File name of an image in the base cache: sha1 of its uuid (or id)."""
    ident = image.get("uuid") or image.get("id")
    if ident in (None, ""):
        raise exception.ImageBackendError(
            reason=f"image {image.get('name')!r} has neither uuid nor id")
    return hashlib.sha1(str(ident).encode()).hexdigest()


def check_instance_uuid(instance_uuid):
    """Instance uuids become directory names: accept canonical uuids only."""
    try:
        canonical = str(uuid_lib.UUID(str(instance_uuid)))
    except ValueError:
        canonical = None
    if canonical != instance_uuid:
        raise exception.ImageBackendError(
            reason=f"{instance_uuid!r} is not a canonical instance uuid")
    return instance_uuid


def _temporary_name(path):
    return f"{path}.part-{uuid_lib.uuid4().hex}"


class ImageBackend:
    """Base cache and instance disks under ``instances_path``."""

    def __init__(self, runner, instances_path):
        self.runner = runner
        self.instances_path = instances_path.rstrip("/") or "/"

    # -- paths ------------------------------------------------------------

    @property
    def base_dir(self):
        return os.path.join(self.instances_path, BASE_DIR)

    def base_path(self, image):
        return os.path.join(self.base_dir, base_key(image))

    def instance_dir(self, instance_uuid):
        return os.path.join(self.instances_path,
                            check_instance_uuid(instance_uuid))

    def stash_dir(self, instance_uuid):
        return self.instance_dir(instance_uuid) + STASH_SUFFIX

    def disk_path(self, instance_uuid):
        return os.path.join(self.instance_dir(instance_uuid), DISK_NAME)

    def console_log_path(self, instance_uuid):
        return os.path.join(self.instance_dir(instance_uuid),
                            CONSOLE_LOG_NAME)

    def image_paths(self, image):
        """Where the cached base, kernel and initrd of ``image`` live."""
        base = self.base_path(image)
        return {"base": base,
                "base_format": image.get("disk_format") or "qcow2",
                "kernel": base + ".kernel" if image.get("kernel") else None,
                "initrd": base + ".initrd" if image.get("initrd") else None}

    # -- base images ------------------------------------------------------

    def ensure_base_image(self, image):
        """Copy the image (and its kernel/initrd) into the cache once.

        ``image`` needs ``uuid`` or ``id``, ``file`` (a path on this
        machine), ``disk_format`` and optionally ``kernel``/``initrd``.
        Returns :meth:`image_paths` plus ``copied``: the files copied now
        (empty when everything was cached already).
        """
        paths = self.image_paths(image)
        if paths["base_format"] not in DISK_FORMATS:
            raise exception.ImageBackendError(
                reason=f"image format {paths['base_format']!r} is not one "
                       f"of {', '.join(DISK_FORMATS)}")
        self.runner.makedirs(self.base_dir)
        copied = []
        for source, target in ((image["file"], paths["base"]),
                               (image.get("kernel"), paths["kernel"]),
                               (image.get("initrd"), paths["initrd"])):
            if source and self._copy_once(source, target,
                                          paths["base_format"]
                                          if target == paths["base"]
                                          else None):
                copied.append(target)
        return dict(paths, copied=copied)

    def missing_image_bytes(self, image):
        """Bytes :meth:`ensure_base_image` would copy here now: the image's
        files (on this machine) not cached on this host yet."""
        paths = self.image_paths(image)
        return sum(os.path.getsize(source) for source, target in (
            (image["file"], paths["base"]),
            (image.get("kernel"), paths["kernel"]),
            (image.get("initrd"), paths["initrd"]))
            if source and not self.runner.exists(target))

    def _copy_once(self, source, target, disk_format):
        if self.runner.exists(target):
            return False
        if os.path.isfile(source):  # else the copy says it is missing
            transfer.ensure_room(self.runner, os.path.dirname(target),
                                 os.path.getsize(source), source)
        temporary = _temporary_name(target)
        try:
            self.runner.put_file(source, temporary)
            self._check_copy(source, temporary)
            if disk_format:
                self._check_format(temporary, disk_format)
            self.runner.rename(temporary, target)
        except BaseException:
            self.runner.remove_tree(temporary)
            raise
        return True

    def _check_copy(self, local_source, copy):
        expected = transfer.sha256_of(remote_runner.LocalRunner(),
                                      local_source)
        actual = transfer.sha256_of(self.runner, copy)
        if expected != actual:
            raise exception.ChecksumMismatch(
                source=local_source, target=f"{self.runner.target}:{copy}",
                source_sha256=expected, target_sha256=actual)

    def _check_format(self, path, disk_format):
        detected = self.disk_info(path).get("format")
        if detected != disk_format:
            raise exception.ImageBackendError(
                reason=f"{path} is {detected}, but the image says "
                       f"{disk_format}")

    # -- instance disks ---------------------------------------------------

    def create_overlay(self, instance_uuid, base, base_format, size_gb=None):
        """Create ``<uuid>/disk``: a qcow2 overlay on ``base``.

        ``size_gb`` None or 0 keeps the base's virtual size; a size below
        it is refused. An overlay that already exists with the same
        backing file is kept (the task may be running a second time).
        Returns {'path', 'created'}.
        """
        path = self.disk_path(instance_uuid)
        self.runner.makedirs(self.instance_dir(instance_uuid))
        if self.runner.exists(path):
            self._check_backing(path, base)
            return {"path": path, "created": False}
        size = self._overlay_size(base, size_gb)
        temporary = _temporary_name(path)
        argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", base,
                "-F", base_format, temporary]
        if size is not None:
            argv.append(str(size))
        try:
            self.runner.run(argv, timeout=QEMU_IMG_TIMEOUT)
            self.runner.rename(temporary, path)
        except BaseException:
            self.runner.remove_tree(temporary)
            raise
        return {"path": path, "created": True}

    def _overlay_size(self, base, size_gb):
        if not size_gb:
            return None
        wanted = int(size_gb) * GiB
        base_size = self.disk_info(base)["virtual-size"]
        if wanted < base_size:
            raise exception.ImageBackendError(
                reason=f"disk of {size_gb} GiB is smaller than the image "
                       f"({base_size} bytes)")
        return wanted

    def _check_backing(self, path, base):
        backing = self.disk_info(path).get("backing-filename")
        if backing != base:
            raise exception.ImageBackendError(
                reason=f"{path} exists with backing file {backing!r}, "
                       f"not {base!r}")

    def touch_console_log(self, instance_uuid):
        """Create an empty console log so libvirt can label and open it."""
        path = self.console_log_path(instance_uuid)
        if not self.runner.exists(path):
            self.runner.touch(path)
        return path

    def resize_disk(self, path, size_gb):
        """Grow the disk to ``size_gb``: 'resized' or 'unchanged'.

        Shrinking is refused: it would cut off the guest's data.
        """
        wanted = int(size_gb) * GiB
        current = self.disk_info(path)["virtual-size"]
        if wanted == current:
            return "unchanged"
        if wanted < current:
            raise exception.ImageBackendError(
                reason=f"refusing to shrink {path} from {current} bytes to "
                       f"{size_gb} GiB")
        self.runner.run(["qemu-img", "resize", "-q", path, str(wanted)],
                        timeout=QEMU_IMG_TIMEOUT)
        return "resized"

    def rebase_overlay(self, path, base, base_format):
        """Point the overlay at ``base`` without touching its data
        (``qemu-img rebase -u``): 'rebased' or 'unchanged'."""
        if self.disk_info(path).get("backing-filename") == base:
            return "unchanged"
        self.runner.run(["qemu-img", "rebase", "-u", "-b", base,
                         "-F", base_format, "--", path],
                        timeout=QEMU_IMG_TIMEOUT)
        return "rebased"

    def receive_disk(self, source, source_path, instance_uuid):
        """Copy a disk from the runner ``source`` into ``<uuid>/disk`` here
        (and an empty console log beside it). A disk already there is kept:
        it only ever appears there complete (see
        :func:`~vmflow.drivers.remote.transfer.copy_file`).
        Returns ``{"path", "bytes", "sha256"}`` (bytes None when kept)."""
        path = self.disk_path(instance_uuid)
        self.runner.makedirs(self.instance_dir(instance_uuid))
        self.touch_console_log(instance_uuid)
        if self.runner.exists(path):
            return {"path": path, "bytes": None, "sha256": None}
        copied = transfer.copy_file(source, source_path, self.runner, path)
        return dict(copied, path=path)

    def disk_size_bytes(self, instance_uuid):
        """Size of the instance's disk file (what a copy moves)."""
        return transfer.file_size(self.runner, self.disk_path(instance_uuid))

    def free_bytes(self):
        self.runner.makedirs(self.instances_path)
        return transfer.free_bytes(self.runner, self.instances_path)

    def stash_disk(self, instance_uuid):
        """Keep a copy of ``<uuid>/disk`` in ``<uuid>_resize/`` (a resize on
        the same host changes the disk in place): 'stashed' or 'exists'."""
        stash = self.stash_dir(instance_uuid)
        target = os.path.join(stash, DISK_NAME)
        if self.runner.exists(target):
            return "exists"
        self.runner.makedirs(stash)
        temporary = _temporary_name(target)
        try:
            self.runner.run(["cp", "--sparse=always", "--",
                             self.disk_path(instance_uuid), temporary],
                            timeout=QEMU_IMG_TIMEOUT)
            self.runner.rename(temporary, target)
        except BaseException:
            self.runner.remove_tree(temporary)
            raise
        return "stashed"

    def restore_stashed_disk(self, instance_uuid):
        """Put the stashed disk back as ``<uuid>/disk``: 'restored' or
        'absent' (nothing stashed, or restored already)."""
        stash = os.path.join(self.stash_dir(instance_uuid), DISK_NAME)
        restored = self.runner.exists(stash)
        if restored:
            self.runner.rename(stash, self.disk_path(instance_uuid))
        self.runner.remove_tree(self.stash_dir(instance_uuid))
        return "restored" if restored else "absent"

    def remove_stashed_disk(self, instance_uuid):
        removed = self.runner.remove_tree(self.stash_dir(instance_uuid))
        return "removed" if removed else "absent"

    def disk_info(self, path):
        """``qemu-img info --output=json`` as a dict (format, virtual-size,
        actual-size, backing-filename, ...)."""
        output = self.runner.run(
            ["qemu-img", "info", "--output=json", "-U", "--", path],
            timeout=QEMU_IMG_TIMEOUT)
        try:
            return json.loads(output)
        except ValueError:
            raise exception.ImageBackendError(
                reason=f"qemu-img info of {path} printed no JSON") from None

    def check_disk(self, path):
        """``qemu-img check`` of a qcow2 disk; raises CommandFailed when the
        image has errors or leaks (exit status 2 or 3)."""
        output = self.runner.run(
            ["qemu-img", "check", "--output=json", "-U", "--", path],
            timeout=QEMU_IMG_TIMEOUT)
        return json.loads(output)

    # -- instance directories ---------------------------------------------

    def instance_dir_exists(self, instance_uuid):
        return self.runner.exists(self.instance_dir(instance_uuid))

    def remove_instance_files(self, instance_uuid):
        """Delete ``<uuid>/`` (and a ``<uuid>_resize/`` stash): 'removed'
        or 'absent' (already gone)."""
        removed = self.runner.remove_tree(self.instance_dir(instance_uuid))
        stashed = self.runner.remove_tree(self.stash_dir(instance_uuid))
        return "removed" if removed or stashed else "absent"

    def list_instance_dirs(self):
        """Names of the directories under the instances path except _base
        (for audits: each should belong to a live instance)."""
        if not self.runner.exists(self.instances_path):
            return []
        return [name for name in self.runner.listdir(self.instances_path)
                if name != BASE_DIR]
