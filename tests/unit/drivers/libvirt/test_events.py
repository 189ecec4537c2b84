"""Power events from libvirt's test driver (it emits lifecycle events
in-process): mapped onto vmflow power states before anyone sees them."""
import queue

from vmflow import power_states
from vmflow.drivers.libvirt import events

WAIT = 10


def collect(driver, key="unit-watch"):
    heard = queue.Queue()
    driver.watch_events(key, lambda uuid, state: heard.put((uuid, state)),
                        lambda reason: heard.put(("lost", reason)))
    return heard


def test_power_changes_arrive_as_vmflow_power_states(driver, defined):
    heard = collect(driver)
    try:
        driver.start(defined)
        driver.pause(defined)
        driver.resume(defined)
        driver.destroy(defined)
        seen = [heard.get(timeout=WAIT) for _ in range(4)]
    finally:
        driver.unwatch_events("unit-watch")
    assert seen == [(defined, power_states.RUNNING),
                    (defined, power_states.PAUSED),
                    (defined, power_states.RUNNING),
                    (defined, power_states.SHUTDOWN)]
    assert set(events.LIFECYCLE_POWER_STATES.values()) <= set(
        power_states.ALL)


def test_watching_again_replaces_and_unwatch_ends(driver, defined):
    first = collect(driver)
    second = collect(driver)  # same key: replaces the first callbacks
    driver.start(defined)
    assert second.get(timeout=WAIT) == (defined, power_states.RUNNING)
    driver.unwatch_events("unit-watch")
    other = collect(driver, key="unit-other")
    try:
        driver.destroy(defined)
        assert other.get(timeout=WAIT) == (defined, power_states.SHUTDOWN)
    finally:
        driver.unwatch_events("unit-other")
    assert first.empty() and second.empty()


def test_definitions_are_no_power_change():
    assert events.power_state_of_event(0) is None  # defined
    assert events.power_state_of_event(1) is None  # undefined


def test_list_power_states_names_vmflow_domains(driver, defined):
    assert driver.list_power_states()[defined] == power_states.SHUTDOWN
