"""Store keys and flow names, in one place.

Store values are plain JSON-serialisable data (uuids, names, dicts); tasks
load what they need from the database by uuid.
"""

# Store keys given when an operation is posted.
INSTANCE_UUID = "instance_uuid"
REQUEST_ID = "request_id"
REQUESTED_HOST = "requested_host"
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
# Reboot types and methods.
SOFT = "soft"
HARD = "hard"
