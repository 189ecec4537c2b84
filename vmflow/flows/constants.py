"""Store keys and flow names, in one place.

Store values are plain JSON-serialisable data (uuids, names, dicts); tasks
load what they need from the database by uuid.
"""

# Store keys given when an operation is posted.
INSTANCE_UUID = "instance_uuid"
REQUEST_ID = "request_id"
REQUESTED_HOST = "requested_host"

# Results tasks provide to later tasks.
HOST_CANDIDATES = "host_candidates"
HOST_NAME = "host_name"
DISK_PATHS = "disk_paths"
DOMAIN_XML = "domain_xml"
WAIT_DEADLINE = "wait_deadline"
POWER_STATE = "power_state"
INSTANCE_HOSTS = "instance_hosts"

# Flow names (also the instance action names).
BUILD_FLOW = "build"
DELETE_FLOW = "delete"
# Inner flows of build: one try on one host, and the wait for running.
BUILD_ON_HOST_FLOW = "build-on-host"
WAIT_RUNNING_FLOW = "wait-for-running"
