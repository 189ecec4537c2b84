"""Select a host and alternates for a resource request."""
from vmflow import conf as vmflow_conf
from vmflow import exception, validation
from vmflow.scheduler import filters, host_state, weighers


def _validate_request(request):
    for key in ("vcpus", "memory_mb", "disk_gb"):
        value = request.get(key)
        if not isinstance(value, int) or value < 0:
            raise exception.InvalidInput(
                reason=f"request {key} {value!r} must be a whole number "
                       "of 0 or more")
    if request.get("host") is not None:
        validation.validate_name(request["host"], "host name")


def select_destinations(session, request, conf=vmflow_conf.CONF):
    """Return ``[chosen, alternate, ...]`` host names for ``request``.

    ``request`` holds ``vcpus``, ``memory_mb``, ``disk_gb`` and optionally
    ``host`` (only that host is considered) and ``ignore_hosts``. At most
    ``[scheduler] max_alternates`` alternates follow the chosen host.
    Raises NoValidHost naming why every host was rejected.
    """
    _validate_request(request)
    candidates = host_state.load_host_states(session)
    forced = request.get("host")
    if forced is not None:
        candidates = [host for host in candidates if host.name == forced]
        if not candidates:
            raise exception.NotFound(kind="host", name=forced)
    ignored = set(request.get("ignore_hosts") or ())
    reasons = {name: "ignored (already tried)" for name in ignored
               if any(host.name == name for host in candidates)}
    passing = []
    for host in candidates:
        if host.name in ignored:
            continue
        reason = filters.reject_reason(host, request, conf)
        if reason:
            reasons[host.name] = reason
        else:
            passing.append(host)
    if not passing:
        raise exception.NoValidHost(reasons)
    ranked = weighers.sort_by_weight(passing, weighers.FreeRamWeigher(conf))
    limit = 1 + conf.scheduler.max_alternates
    return [host.name for host in ranked[:limit]]
