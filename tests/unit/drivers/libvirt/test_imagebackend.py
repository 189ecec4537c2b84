"""Image backend with the real qemu-img through a LocalRunner."""
import os
import subprocess
import threading

import pytest

from vmflow import exception
from vmflow.drivers.libvirt import imagebackend
from vmflow.drivers.remote.runner import LocalRunner

from tests.unit.drivers.conftest import new_uuid

MiB = 1024 ** 2
GiB = 1024 ** 3


def make_image(directory, disk_format, size="64M", kernel=False):
    path = directory / f"base.{disk_format}"
    subprocess.run(["qemu-img", "create", "-q", "-f", disk_format, str(path),
                    size], check=True, timeout=60)
    image = {"uuid": new_uuid(), "name": f"img-{disk_format}",
             "file": str(path), "disk_format": disk_format,
             "kernel": None, "initrd": None}
    if kernel:
        (directory / "vmlinuz").write_bytes(b"kernel bytes")
        (directory / "initrd.gz").write_bytes(b"initrd bytes")
        image.update(kernel=str(directory / "vmlinuz"),
                     initrd=str(directory / "initrd.gz"))
    return image


@pytest.fixture
def backend(tmp_path):
    return imagebackend.ImageBackend(LocalRunner(),
                                     str(tmp_path / "instances"))


@pytest.fixture
def images_dir(tmp_path):
    directory = tmp_path / "images"
    directory.mkdir()
    return directory


@pytest.mark.parametrize("disk_format", ["qcow2", "raw"])
def test_base_image_is_copied_once(backend, images_dir, disk_format):
    image = make_image(images_dir, disk_format, kernel=True)
    first = backend.ensure_base_image(image)
    base = backend.base_path(image)
    assert first["base"] == base
    assert first["base_format"] == disk_format
    assert sorted(first["copied"]) == sorted(
        [base, base + ".kernel", base + ".initrd"])
    assert open(base + ".kernel", "rb").read() == b"kernel bytes"
    inode = os.stat(base).st_ino

    second = backend.ensure_base_image(image)
    assert second["copied"] == []
    assert os.stat(base).st_ino == inode
    assert sorted(os.listdir(backend.base_dir)) == sorted(
        os.path.basename(path) for path in first["copied"])


def test_base_name_is_derived_from_the_image_uuid(backend):
    image = {"uuid": "0f6c5a3e-0000-4000-8000-000000000001"}
    assert backend.base_path(image) == os.path.join(
        backend.instances_path, "_base",
        imagebackend.base_key({"uuid": image["uuid"]}))
    assert backend.base_path(image) != backend.base_path({"id": 7})
    with pytest.raises(exception.ImageBackendError):
        imagebackend.base_key({"name": "no id"})


def test_concurrent_copies_leave_one_complete_base(backend, images_dir):
    image = make_image(images_dir, "qcow2")
    errors = []

    def ensure():
        try:
            backend.ensure_base_image(image)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert os.listdir(backend.base_dir) == [imagebackend.base_key(image)]
    assert backend.disk_info(backend.base_path(image))["format"] == "qcow2"


def test_format_mismatch_is_refused_and_leaves_nothing(backend, images_dir):
    image = make_image(images_dir, "qcow2")
    image["disk_format"] = "raw"
    with pytest.raises(exception.ImageBackendError) as caught:
        backend.ensure_base_image(image)
    assert "is qcow2" in str(caught.value)
    assert os.listdir(backend.base_dir) == []


def test_missing_image_file_is_an_image_backend_error(backend, images_dir):
    image = make_image(images_dir, "raw")
    image["file"] = str(images_dir / "gone.raw")
    with pytest.raises(exception.ImageBackendError):
        backend.ensure_base_image(image)
    assert os.listdir(backend.base_dir) == []


@pytest.mark.parametrize("disk_format", ["qcow2", "raw"])
def test_overlay_has_backing_file_and_size(backend, images_dir, disk_format):
    image = make_image(images_dir, disk_format)
    cached = backend.ensure_base_image(image)
    uuid = new_uuid()
    result = backend.create_overlay(uuid, cached["base"], disk_format, 1)
    assert result == {"path": backend.disk_path(uuid), "created": True}
    info = backend.disk_info(result["path"])
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == cached["base"]
    assert info["backing-filename-format"] == disk_format
    assert info["virtual-size"] == 1 * GiB
    assert os.listdir(backend.instance_dir(uuid)) == ["disk"]


def test_overlay_without_size_keeps_the_image_size(backend, images_dir):
    cached = backend.ensure_base_image(make_image(images_dir, "qcow2"))
    uuid = new_uuid()
    path = backend.create_overlay(uuid, cached["base"], "qcow2", 0)["path"]
    assert backend.disk_info(path)["virtual-size"] == 64 * MiB


def test_overlay_smaller_than_the_image_is_refused(backend, images_dir):
    cached = backend.ensure_base_image(
        make_image(images_dir, "qcow2", size="2G"))
    uuid = new_uuid()
    with pytest.raises(exception.ImageBackendError) as caught:
        backend.create_overlay(uuid, cached["base"], "qcow2", 1)
    assert "smaller than the image" in str(caught.value)
    assert not os.path.exists(backend.disk_path(uuid))


def test_create_overlay_again_keeps_the_existing_disk(backend, images_dir):
    cached = backend.ensure_base_image(make_image(images_dir, "qcow2"))
    uuid = new_uuid()
    path = backend.create_overlay(uuid, cached["base"], "qcow2", 1)["path"]
    inode = os.stat(path).st_ino
    again = backend.create_overlay(uuid, cached["base"], "qcow2", 1)
    assert again == {"path": path, "created": False}
    assert os.stat(path).st_ino == inode


def test_existing_overlay_on_another_base_is_refused(backend, images_dir):
    cached = backend.ensure_base_image(make_image(images_dir, "qcow2"))
    uuid = new_uuid()
    backend.create_overlay(uuid, cached["base"], "qcow2", 1)
    with pytest.raises(exception.ImageBackendError) as caught:
        backend.create_overlay(uuid, cached["base"] + "-other", "qcow2", 1)
    assert "backing file" in str(caught.value)


def test_resize_grows_and_refuses_to_shrink(backend, images_dir):
    cached = backend.ensure_base_image(make_image(images_dir, "qcow2"))
    uuid = new_uuid()
    path = backend.create_overlay(uuid, cached["base"], "qcow2", 1)["path"]
    assert backend.resize_disk(path, 3) == "resized"
    assert backend.disk_info(path)["virtual-size"] == 3 * GiB
    assert backend.resize_disk(path, 3) == "unchanged"
    with pytest.raises(exception.ImageBackendError):
        backend.resize_disk(path, 2)
    assert backend.disk_info(path)["virtual-size"] == 3 * GiB
    assert backend.check_disk(path)["check-errors"] == 0


def test_remove_instance_files_is_idempotent(backend, images_dir):
    cached = backend.ensure_base_image(make_image(images_dir, "qcow2"))
    uuid = new_uuid()
    backend.create_overlay(uuid, cached["base"], "qcow2", 1)
    backend.touch_console_log(uuid)
    assert backend.instance_dir_exists(uuid)
    assert backend.remove_instance_files(uuid) == "removed"
    assert backend.remove_instance_files(uuid) == "absent"
    assert not backend.instance_dir_exists(uuid)
    assert os.path.exists(cached["base"])  # the cache is shared: kept


def test_list_instance_dirs_skips_the_base_cache(backend, images_dir):
    assert backend.list_instance_dirs() == []
    cached = backend.ensure_base_image(make_image(images_dir, "raw"))
    uuids = sorted(new_uuid() for _ in range(3))
    for uuid in uuids:
        backend.create_overlay(uuid, cached["base"], "raw", 1)
    assert backend.list_instance_dirs() == uuids


@pytest.mark.parametrize("bad", ["../etc", "/", "", "not-a-uuid",
                                 "A0B1C2D3-0000-4000-8000-000000000001"])
def test_instance_paths_need_a_canonical_uuid(backend, bad):
    with pytest.raises(exception.ImageBackendError):
        backend.remove_instance_files(bad)


def test_disk_info_of_a_missing_file_is_command_failed(backend, tmp_path):
    with pytest.raises(exception.CommandFailed) as caught:
        backend.disk_info(str(tmp_path / "nope"))
    assert "qemu-img info" in str(caught.value)
    assert "No such file" in str(caught.value)


def test_driver_creates_and_removes_disks(driver, images_dir, instance,
                                          flavor):
    image = make_image(images_dir, "qcow2", kernel=True)
    disks = driver.create_disks(instance, image, flavor)
    assert disks["disk"] == driver.images.disk_path(instance["uuid"])
    assert disks["kernel"] == disks["base"] + ".kernel"
    assert os.path.exists(disks["console_log"])
    assert len(disks["created"]) == 4
    assert driver.create_disks(instance, image, flavor)["created"] == []
    assert driver.disk_info(instance["uuid"])["virtual-size"] == GiB
    assert driver.resize_disk(instance["uuid"], 2) == "resized"
    assert driver.list_instance_dirs() == [instance["uuid"]]
    assert driver.remove_disks(instance["uuid"]) == "removed"
    assert driver.remove_disks(instance["uuid"]) == "absent"
    assert not driver.instance_dir_exists(instance["uuid"])
