import json
import os
import subprocess

from vmflow import exception, validation
from vmflow.inventory import (as_dict, delete_unless_used, ensure_name_free,
                              get_by_name, insert_unique, list_by_name)
from vmflow.persistence import models

COLUMNS = ("id", "uuid", "name", "file", "disk_format", "size_bytes",
           "virtual_size_bytes", "kernel", "initrd", "cmdline")
DISK_FORMATS = ("qcow2", "raw")


def inspect_disk_file(path, disk_format=None):
    """Return qemu-img's view of ``path``; refuse a format mismatch.

    The format is probed, then compared with ``disk_format`` when given: a
    qcow2 file registered as raw (or the reverse) would show the guest a
    different disk than the operator meant. A qcow2 image with a backing
    file is refused too: the backing path would point at a file on the
    machine that added it, not at the image itself.
    """
    result = subprocess.run(
        ["qemu-img", "info", "--output=json", "--", path],
        capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        reason = " ".join(result.stderr.split()) or "qemu-img failed"
        raise exception.InvalidInput(
            reason=f"image file {path!r} is not a readable disk image: "
                   f"{reason}")
    info = json.loads(result.stdout)
    detected = info.get("format")
    if detected not in DISK_FORMATS:
        raise exception.InvalidInput(
            reason=f"image file {path!r} has format {detected!r}; "
                   f"supported: {', '.join(DISK_FORMATS)}")
    if disk_format is not None and disk_format != detected:
        raise exception.InvalidInput(
            reason=f"image file {path!r} is {detected}, not {disk_format}")
    if info.get("backing-filename"):
        raise exception.InvalidInput(
            reason=f"image file {path!r} has a backing file "
                   f"{info['backing-filename']!r}; flatten it first")
    return info


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
