"""What the persistence backend remembers between saves, per process:
the rows it last read or wrote, and the progress updates it deferred."""
import collections
import json
import threading

KNOWN_ROWS_LIMIT = 20000
# TaskFlow's atom meta keys for a task's progress (taskflow.storage).
PROGRESS_KEYS = frozenset(("progress", "progress_details"))


class KnownRows:
    """The serialized columns of rows this process last read or wrote,
    by uuid (least recently used dropped past ``limit``: a row that is not
    known is simply written in full)."""

    def __init__(self, limit=KNOWN_ROWS_LIMIT):
        self._rows = collections.OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, uuid):
        with self._lock:
            row = self._rows.get(uuid)
            if row is not None:
                self._rows.move_to_end(uuid)
            return row

    def put(self, uuid, row):
        with self._lock:
            self._rows[uuid] = row
            self._rows.move_to_end(uuid)
            while len(self._rows) > self._limit:
                self._rows.popitem(last=False)

    def forget(self, uuid):
        with self._lock:
            self._rows.pop(uuid, None)

    def clear(self):
        with self._lock:
            self._rows.clear()


class PendingProgress:
    """Progress-only atom saves, written with the atom's next save or its
    flow's.

    TaskFlow saves a task's progress (0.0, then 1.0) right after each of
    its state saves: half of all saves. Nothing recovers from progress --
    a resumed flow goes by states, intentions and results -- so a progress
    value is held back and written with the next save that matters. A
    SIGKILL loses at most the last progress of the flow's tasks, never a
    state or a result.
    """

    def __init__(self):
        self._pending = {}
        self._lock = threading.Lock()

    def defers(self, uuid, known, changed):
        """Whether this save (``changed`` columns of the ``known`` row of
        atom ``uuid``) changes only progress; it is then held back."""
        if known is None or set(changed) != {"meta"} \
                or known.get("parent_uuid") is None \
                or not _only_progress_differs(known["meta"], changed["meta"]):
            return False
        with self._lock:
            self._pending[uuid] = (known["parent_uuid"], changed["meta"])
        return True

    def take(self, uuid):
        """``{"meta": ...}`` held back for atom ``uuid`` (now written by
        the caller), else ``{}``."""
        with self._lock:
            found = self._pending.pop(uuid, None)
        return {} if found is None else {"meta": found[1]}

    def take_flow(self, flow_uuid):
        """Atom uuid -> meta held back for the atoms of flow ``flow_uuid``
        (now written by the caller)."""
        with self._lock:
            taken = {uuid: meta for uuid, (parent, meta)
                     in self._pending.items() if parent == flow_uuid}
            for uuid in taken:
                del self._pending[uuid]
        return taken

    def clear(self):
        with self._lock:
            self._pending.clear()


def _only_progress_differs(old_meta, new_meta):
    old, new = (json.loads(meta) if meta else {}
                for meta in (old_meta, new_meta))
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    return ({key: value for key, value in old.items()
             if key not in PROGRESS_KEYS}
            == {key: value for key, value in new.items()
                if key not in PROGRESS_KEYS})
