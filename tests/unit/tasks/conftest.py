"""Unit tests of tasks: execute and revert called directly, twice."""
import pytest

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)


@pytest.fixture
def instance(cloud):
    """A freshly created instance (building/scheduling) of flavor tiny."""
    return cloud.create_instance()


@pytest.fixture
def uuid(instance):
    return instance["uuid"]
