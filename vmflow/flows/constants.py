"""Store keys and flow names, in one place.

Store values are plain JSON-serialisable data (uuids, names, dicts); tasks
load what they need from the database by uuid.
"""

# Store keys given when an operation is posted.
INSTANCE_UUID = "instance_uuid"
REQUEST_ID = "request_id"
REQUESTED_HOST = "requested_host"
# Resize and cold migration: the migration record's uuid (chosen at
# posting), the flavor resized to (the current one for a migration) and
# the type; confirm and revert also get the destination.
MIGRATION_UUID = "migration_uuid"
NEW_FLAVOR = "new_flavor"
MIGRATION_TYPE = "migration_type"
# Reboot: "soft" (falls back to hard) or "hard".
REBOOT_TYPE = "reboot_type"

# Results tasks provide to later tasks.
HOST_CANDIDATES = "host_candidates"
HOST_NAME = "host_name"
DISK_PATHS = "disk_paths"
DOMAIN_XML = "domain_xml"
WAIT_DEADLINE = "wait_deadline"
POWER_STATE = "power_state"
INSTANCE_HOSTS = "instance_hosts"
ACPI_SHUTDOWN = "acpi_shutdown"
SHUTDOWN_DEADLINE = "shutdown_deadline"
CLEAN_SHUTDOWN = "clean_shutdown"
GUEST_WENT_DOWN = "guest_went_down"
REBOOT_METHOD = "reboot_method"
# The destination of a resize (provided by its host retry in prep; given
# in the store of confirm and revert).
DEST_HOST = "dest_host"

# Flow names (also the instance action names).
BUILD_FLOW = "build"
DELETE_FLOW = "delete"
# Inner flows of build: one try on one host, and the wait for running.
BUILD_ON_HOST_FLOW = "build-on-host"
WAIT_RUNNING_FLOW = "wait-for-running"
# The reboot and power flows are named after their actions
# (vmflow.server_actions).
# Inner flows of reboot: the attempts (soft, then hard), each path, and
# the waits for the guest to go down.
REBOOT_ATTEMPTS_FLOW = "reboot-attempts"
SOFT_REBOOT_FLOW = "soft-reboot"
HARD_REBOOT_FLOW = "hard-reboot"
WAIT_SHUTDOWN_FLOW = "wait-for-shutdown"
# Inner flows of resize: its three phases, and the host retry of prep.
RESIZE_PREP_FLOW = "resize-prep"
RESIZE_EXECUTE_FLOW = "resize-execute"
RESIZE_FINISH_FLOW = "resize-finish"
PREP_ON_HOST_FLOW = "prep-on-host"
# Reboot types and methods.
SOFT = "soft"
HARD = "hard"
