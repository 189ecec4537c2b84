import pytest

from vmflow import exception, validation


@pytest.mark.parametrize("name", ["web-1", "a", "db.primary", "x_y",
                                  "A" * 63])
def test_good_names_pass(name):
    assert validation.validate_name(name) == name


@pytest.mark.parametrize("name, fragment", [
    ("", "empty"),
    ("a/b", "'/'"),
    ("..", "'..'"),
    ("a..b", "'..'"),
    ("tab\there", "control"),
    ("nl\n", "control"),
    ("x" * 64, "64 characters"),
    ("-leading", "start with"),
    ("<xml>", "may only contain"),
    ("sp ace", "may only contain"),
])
def test_bad_names_are_refused_with_the_value_named(name, fragment):
    with pytest.raises(exception.InvalidName) as caught:
        validation.validate_name(name)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message
    assert repr(name) in message


def test_paths_must_be_absolute_without_parent_references():
    assert validation.validate_absolute_path("/srv/vm/", "p") == "/srv/vm"
    with pytest.raises(exception.InvalidInput, match="not an absolute"):
        validation.validate_absolute_path("srv/vm", "p")
    with pytest.raises(exception.InvalidInput, match=r"'\.\.'"):
        validation.validate_absolute_path("/srv/../etc", "p")


@pytest.mark.parametrize("text, expected", [
    ("root@10.0.0.5", ("root", "10.0.0.5", 22)),
    ("stack@host-a.example:2222", ("stack", "host-a.example", 2222)),
    ("root@[::1]:22", ("root", "::1", 22)),
])
def test_ssh_endpoints_parse(text, expected):
    assert validation.parse_ssh_endpoint(text) == expected


@pytest.mark.parametrize("text", ["host", "root@", "root@h:0", "root@h:70000",
                                  "ro ot@h", "root@h;rm -rf /"])
def test_bad_ssh_endpoints_are_refused(text):
    with pytest.raises(exception.InvalidInput) as caught:
        validation.parse_ssh_endpoint(text)
    assert repr(text) in str(caught.value)


def test_counts_are_bounded_by_what_their_column_holds():
    from vmflow.persistence import models
    assert validation.column_max(models.Flavor.ram_mb) == 2**31 - 1
    assert validation.column_max(models.Image.size_bytes) == 2**63 - 1
    assert validation.validate_count(2**31 - 1, models.Flavor.ram_mb,
                                     "ram") == 2**31 - 1
    with pytest.raises(exception.InvalidInput,
                       match=r"ram 2147483648 must be at most 2147483647 "
                             r"\(the most column flavors.ram_mb holds\)"):
        validation.validate_count(2**31, models.Flavor.ram_mb, "ram")
    with pytest.raises(exception.InvalidInput, match="-2 must be at least -1"):
        validation.validate_count(-2, models.QuotaLimit.hard_limit, "limit",
                                  minimum=-1)
