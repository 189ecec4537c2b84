"""Copying a file from one host to another, streamed through this process.

Both ends are runners (:mod:`vmflow.drivers.remote.runner`): the bytes are
read from the source host and written to the destination host chunk by
chunk, so nothing holds a whole disk (no local temporary copy), and hashed
on the way. The file lands under a temporary name beside its target and is
renamed into place only once ``sha256sum`` on the source host, on the
destination host and the bytes streamed all agree: a target that exists
under its real name is complete. Whatever fails, the temporary file is
removed before the error is raised.
"""
import hashlib
import uuid as uuid_lib

from vmflow import exception

CHUNK_BYTES = 1024 * 1024
CHECKSUM_TIMEOUT = 600


def sha256_of(runner, path):
    """``sha256sum`` of ``path`` on the runner's host."""
    output = runner.run(["sha256sum", "--", path], timeout=CHECKSUM_TIMEOUT)
    return output.split()[0] if output.strip() else ""


def free_bytes(runner, path):
    """Bytes free for files under ``path`` on the runner's host."""
    output = runner.run(["df", "--output=avail", "-B1", "--", path])
    lines = output.split()
    try:
        return int(lines[-1])
    except (IndexError, ValueError):
        raise exception.ImageBackendError(
            reason=f"df of {runner.target}:{path} printed {output!r}"
        ) from None


def ensure_room(runner, directory, size, what):
    """Raise ImageBackendError unless ``size`` bytes fit under
    ``directory`` on the runner's host: a full disk says so, where an SFTP
    upload into it fails with a bare "Failure"."""
    free = free_bytes(runner, directory)
    if free < size:
        raise exception.ImageBackendError(
            reason=f"not enough space on {runner.target} under {directory}: "
                   f"{free} bytes free, {what} needs {size}")
    return free


def file_size(runner, path):
    output = runner.run(["stat", "--format=%s", "--", path])
    return int(output.strip())


def copy_file(source, source_path, target, target_path):
    """Stream ``source_path`` on ``source`` to ``target_path`` on
    ``target`` (both runners); returns ``{"bytes", "sha256"}``."""
    temporary = (f"{target_path}.part-{uuid_lib.uuid4().hex}")
    where = f"{source.target}:{source_path} to {target.target}:{target_path}"
    try:
        size, streamed = _stream(source, source_path, target, temporary,
                                 where)
        source_sum = sha256_of(source, source_path)
        target_sum = sha256_of(target, temporary)
        if not source_sum == target_sum == streamed:
            raise exception.ChecksumMismatch(
                source=f"{source.target}:{source_path}",
                target=f"{target.target}:{target_path}",
                source_sha256=source_sum, target_sha256=target_sum)
        target.rename(temporary, target_path)
    except BaseException:
        # a failed removal is raised instead: it would leak the file
        target.remove_tree(temporary)
        raise
    return {"bytes": size, "sha256": streamed}


def _stream(source, source_path, target, target_path, where):
    digest = hashlib.sha256()
    size = 0
    try:
        with source.open_file(source_path, "rb") as reader, \
                target.open_file(target_path, "wb") as writer:
            while True:
                chunk = reader.read(CHUNK_BYTES)
                if not chunk:
                    break
                writer.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise exception.ImageBackendError(
            reason=f"copying {where} failed after {size} bytes: "
                   f"{error.strerror or error}") from None
    return size, digest.hexdigest()
