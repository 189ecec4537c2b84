import os

from vmflow import drivers, exception, validation
from vmflow.inventory import (as_dict, delete_unless_used, ensure_name_free,
                              get_by_name, insert_unique, list_by_name)
from vmflow.persistence import models

COLUMNS = ("id", "uuid", "name", "file", "disk_format", "size_bytes",
           "virtual_size_bytes", "kernel", "initrd", "cmdline")
DISK_FORMATS = ("qcow2", "raw")
SECTOR = 512
_TEXT_BYTES = frozenset(b"\t\n\r" + bytes(range(32, 127)))


def inspect_disk_file(path, disk_format=None):
    """Return qemu-img's view of ``path``; refuse what a guest should not
    be given.

    The format is probed, then compared with ``disk_format`` when given: a
    qcow2 file registered as raw (or the reverse) would show the guest a
    different disk than the operator meant. A qcow2 image with a backing
    file or an external data file is refused too: that path would point at
    a file on the machine that added it (or anywhere else), not at the
    image itself. A raw image must look like a disk (see _check_raw).
    """
    info = _qemu_img_info(path)
    detected = info.get("format")
    if detected not in DISK_FORMATS:
        raise _refused(path, f"has format {detected!r}; supported: "
                             f"{', '.join(DISK_FORMATS)}")
    if disk_format is not None and disk_format != detected:
        raise _refused(path, f"is {detected}, not {disk_format}")
    if info.get("backing-filename"):
        raise _refused(path, f"has a backing file "
                             f"{info['backing-filename']!r}; flatten it first")
    data_file = info.get("format-specific", {}).get("data", {}).get(
        "data-file")
    if data_file:
        raise _refused(path, f"keeps its data in an external file "
                             f"{data_file!r}; convert it to a plain qcow2")
    if detected == "raw":
        _check_raw(path)
    return info


def _refused(path, reason):
    return exception.InvalidInput(reason=f"image file {path!r} {reason}")


def _qemu_img_info(path):
    try:
        return drivers.probe_disk_file(path)
    except exception.ImageBackendError as error:
        reason = error.kwargs.get("stderr") or str(error)
        raise _refused(path, f"is not a readable disk image: {reason}")


def _check_raw(path):
    """qemu-img calls any file raw; a disk is whole sectors and its first
    sector is not all printable text."""
    size = os.path.getsize(path)
    if size == 0:
        raise _refused(path, "is empty")
    if size % SECTOR:
        raise _refused(path, f"is {size} bytes, not a whole number of "
                             f"{SECTOR}-byte sectors: not a disk image")
    with open(path, "rb") as disk:
        first_sector = disk.read(SECTOR)
    if all(byte in _TEXT_BYTES for byte in first_sector):
        raise _refused(path, "starts with a sector of plain text: not a "
                             "disk image")


def add_image(session, name, file, disk_format=None, kernel=None,
              initrd=None, cmdline=None):
    validation.validate_name(name, "image name")
    if disk_format is not None and disk_format not in DISK_FORMATS:
        raise exception.InvalidInput(
            reason=f"image format {disk_format!r} is not one of "
                   f"{', '.join(DISK_FORMATS)}")
    if (initrd or cmdline) and not kernel:
        raise exception.InvalidInput(
            reason="--initrd and --cmdline need --kernel")
    file = validation.validate_existing_file(file, "image file")
    if kernel:
        kernel = validation.validate_existing_file(kernel, "kernel")
    if initrd:
        initrd = validation.validate_existing_file(initrd, "initrd")
    if cmdline:
        validation.validate_text(cmdline, "kernel command line", 1024)
    ensure_name_free(session, models.Image, "image", name)
    info = inspect_disk_file(file, disk_format)
    image = insert_unique(session, models.Image(
        name=name, file=file, disk_format=info["format"],
        size_bytes=os.path.getsize(file),
        virtual_size_bytes=info["virtual-size"], kernel=kernel,
        initrd=initrd, cmdline=cmdline), "image")
    return as_dict(image, COLUMNS)


def list_images(session):
    return list_by_name(session, models.Image, COLUMNS)


def show_image(session, name):
    return as_dict(get_by_name(session, models.Image, "image", name),
                   COLUMNS)


def delete_image(session, name):
    delete_unless_used(session, models.Image, "image", name,
                       models.Instance.image_id)
