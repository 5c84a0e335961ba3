"""Configuration helpers: dataclasses to and from JSON/YAML, `section.field=value` overrides, durations.

Each component has a `@dataclass` of plain values (see `tflm.tasks.translation`); a run's configuration
is one dataclass of such sections, saved as `config.json` in the run directory.
"""

import dataclasses
import json
import os
import re
import typing


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def to_dict(config):
    return dataclasses.asdict(config)


def from_dict(cls, values, where="config"):
    """Builds dataclass `cls` from a (nested) dict, naming unknown fields and their valid alternatives."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(values).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known fields: {', '.join(fields)}."
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, f"{where}.{name}")
        else:
            kwargs[name] = coerce(value, hint, f"{where}.{name}")
    return cls(**kwargs)


def coerce(value, hint, where):
    """Converts `value` (often a string from the command line) to the annotated type `hint`."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin is typing.Union:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return coerce(value, args[0], where)
    if value is None:
        return None
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes", "on"):
                    return True
                if value.lower() in ("false", "0", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        if origin in (list, tuple) or hint in (list, tuple):
            if isinstance(value, str):
                value = json.loads(value) if value.startswith("[") else [v for v in value.split(",") if v]
            item = args[0] if args else None
            return [coerce(v, item, where) if item else v for v in value]
        if origin is dict or hint is dict:
            return json.loads(value) if isinstance(value, str) else dict(value)
    except (TypeError, ValueError, json.JSONDecodeError):
        raise ConfigError(f"{where}={value!r} is not a valid {getattr(hint, '__name__', hint)}.") from None
    return value


def apply_overrides(config, overrides):
    """Returns a copy of `config` with `section.field=value` strings applied (e.g. `training.epochs=3`).

    A value for a dict field may be a dotted key below it: `model.params.hidden_dim=256`.
    """
    values = to_dict(config)
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"Override {override!r} must look like section.field=value, e.g. training.epochs=3.")
        key, raw = override.split("=", 1)
        path = key.strip().split(".")
        target = values
        for part in path[:-1]:
            if part not in target or not isinstance(target[part], dict):
                raise ConfigError(f"Override {override!r}: {part!r} is not a configuration section.")
            target = target[part]
        target[path[-1]] = parse_value(raw)
    return from_dict(type(config), values)


def parse_value(raw):
    """A command-line value: JSON when it parses (numbers, true, null, lists, objects), else the string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def load_file(path):
    """Reads a JSON or YAML configuration file into a dict."""
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such configuration file.")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            context = getattr(error, "context", None)
            raise ConfigError(f"{where}: invalid YAML ({problem}{', ' + context if context else ''}).") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{error.lineno}: invalid JSON ({error.msg}).") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a configuration file holds a mapping of sections.")
    return values


def save_file(config, path):
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(to_dict(config), f, indent=2)
        f.write("\n")
    os.replace(temporary, path)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$")


def parse_duration(value):
    """Seconds from `90`, `"90s"`, `"25m"` or `"1.5h"`; None stays None."""
    if value is None or isinstance(value, (int, float)):
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(f"Duration {value!r} is not understood; use seconds or e.g. 90s, 25m, 1.5h.")
    number, unit = float(match.group(1)), (match.group(2) or "s")
    return number * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}[unit]


def diff(old, new, prefix=""):
    """Dotted names of the fields whose values differ between two config dicts."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changed += diff(a, b, name + ".")
        elif a != b:
            changed.append(name)
    return changed
