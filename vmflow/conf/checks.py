"""Eager checks of the whole configuration, so a bad value stops a command
at start-up with one line instead of failing later, deep in a flow.

oslo.config converts (and checks ``choices``, ``min``, ``max``) only when
an option is read, so :func:`validate` reads every registered option once.
"""
import sqlalchemy
from oslo_config import cfg, types
from sqlalchemy import exc as sa_exc

from vmflow import exception

SECRET_SHOWN_AS = "****"


def load(conf, argv, config_files):
    """``conf(...)`` with a missing, unreadable or unparsable file as one
    InvalidConfig line naming the file."""
    try:
        conf(list(argv), project="vmflow", default_config_files=config_files,
             validate_default_values=True)
    except (cfg.ConfigFilesNotFoundError,
            cfg.ConfigFilesPermissionDeniedError) as error:
        raise exception.InvalidConfig(
            reason=f"configuration file {_files(error.config_files)} not "
                   "found or not readable") from None
    except cfg.ConfigFileParseError as error:
        raise exception.InvalidConfig(
            reason=f"configuration file {error.config_file!r} cannot be "
                   f"parsed: {error.msg}") from None


def _files(names):
    return ", ".join(repr(name) for name in names)


def validate(conf, groups):
    """Read every option of ``groups`` (``{group: [opt, ...]}`` as the
    modules' ``list_opts()`` give them); raise InvalidConfig naming the
    first bad ``[group] option = 'value'`` and why."""
    for group, opts in groups.items():
        group = getattr(group, "name", group)
        for opt in opts:
            _validate_opt(conf, group, opt)


def _validate_opt(conf, group, opt):
    try:
        value = _read(conf, group, opt)
    except ValueError as error:
        raw, source = _raw_value(conf, group, opt)
        raise exception.InvalidConfig(reason=_describe(
            group, opt, raw, source, _reason(opt, raw, error))) from None
    if (group, opt.dest) == ("database", "connection") and value:
        _check_database_url(conf, group, opt, value)


def _read(conf, group, opt):
    if group == "DEFAULT":
        return getattr(conf, opt.dest)
    return getattr(conf[group], opt.dest)


def _reason(opt, raw, error):
    choices = getattr(opt.type, "choices", None)
    if choices:
        return "must be one of " + ", ".join(str(c) for c in choices)
    bounds = _out_of_bounds(opt.type, raw)
    if bounds:
        return bounds
    # oslo's text is "Value for option X from LOCATION is not valid: WHY".
    return str(error).rsplit("is not valid: ", 1)[-1]


def _out_of_bounds(opt_type, raw):
    """oslo prints bounds as %g (2.14748e+09); say them exactly."""
    if not isinstance(opt_type, types.Number):
        return None
    try:
        number = opt_type.num_type(raw)
    except ValueError:
        return None
    if opt_type.min is not None and number < opt_type.min:
        return f"must be at least {opt_type.min}"
    if opt_type.max is not None and number > opt_type.max:
        return f"must be at most {opt_type.max}"
    return None


def _describe(group, opt, raw, source, reason):
    shown = SECRET_SHOWN_AS if opt.secret else raw
    where = f" (in {source})" if source else ""
    return f"[{group}] {opt.dest} = {shown!r}: {reason}{where}"


def _raw_value(conf, group, opt):
    """The text given for ``opt`` in the last config file that sets it
    (oslo keeps only the converted value), and that file's name."""
    for config_file in reversed(conf.config_file or []):
        sections = {}
        cfg.ConfigParser(config_file, sections).parse()
        values = sections.get(group, {}).get(opt.dest)
        if values:
            return values[-1], config_file
    return "", None


def _check_database_url(conf, group, opt, url):
    try:
        sqlalchemy.engine.make_url(url).get_dialect()
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as error:
        _raw, source = _raw_value(conf, group, opt)
        reason = str(error).replace(url, SECRET_SHOWN_AS)
        raise exception.InvalidConfig(reason=_describe(
            group, opt, url, source, reason)) from None
