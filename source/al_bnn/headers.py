"""Schemas of the JSON headers of the package's saved files (models, learners, checkpoints).

A header is read from a file anyone could have edited, so it is checked against its schema
(types, ranges, lengths, nesting depth) before anything is built from it: a crafted header gets one
ArrayFileError naming the file, the key and the rule, never a KeyError, RecursionError or a network
built with a million layers. Values in messages are cut to a few dozen characters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from al_bnn.safe_arrays import ArrayFileError, _brief

MAX_DEPTH = 16              # nesting of lists and mappings in any header
MAX_STRING = 10_000         # characters of any string in a header
MAX_ROWS = 1_000_000        # entries of a list of rows (metrics, history, selected points)
MAX_LAYERS = 64             # hidden layers of a saved network
MAX_WIDTH = 100_000         # units of one hidden layer
MAX_FEATURES = 1_000_000    # input features of a saved network
MAX_ENSEMBLE = 1_000        # members of a saved ensemble
MAX_PARAMETERS = 500_000_000  # the weights a saved network's layer sizes imply (a lower bound)
MAX_COUNT = 10**12          # any other count (fits, epochs, arrays)
NAME_LENGTH = 120


class Schema:
    """A rule for one JSON value; `check` returns the value or raises ArrayFileError."""

    def check(self, value: Any, where: str, path: str) -> Any:
        raise NotImplementedError

    @staticmethod
    def fail(path: str, where: str, rule: str, value: Any) -> ArrayFileError:
        return ArrayFileError(f"{path}: header key '{where}' must be {rule}, got {_brief(value, 60)}; the file is "
                              "corrupt or was not written by this package")


class Integer(Schema):
    def __init__(self, low: int = 0, high: int = MAX_COUNT):
        self.low, self.high = low, high

    def check(self, value, where, path):
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            raise self.fail(path, where, f"an integer in [{self.low}, {self.high}]", value)
        return value


class Number(Schema):
    def __init__(self, positive: bool = False, finite: bool = True):
        self.positive, self.finite = positive, finite

    def check(self, value, where, path):
        ok = not isinstance(value, bool) and isinstance(value, (int, float))
        if ok and isinstance(value, int):
            ok = abs(value) < 2**1023
        ok = ok and (not self.finite or math.isfinite(value)) and (not self.positive or value > 0)
        if not ok:
            rule = "a finite number" if self.finite else "a number"
            raise self.fail(path, where, rule + (" > 0" if self.positive else ""), value)
        return value


class String(Schema):
    def __init__(self, max_length: int = MAX_STRING, choices: Sequence[str] | None = None, name: bool = False):
        self.max_length, self.choices, self.name = max_length, choices, name

    def check(self, value, where, path):
        if not isinstance(value, str) or len(value) > self.max_length:
            raise self.fail(path, where, f"a string of at most {self.max_length} characters", value)
        if self.choices is not None and value not in self.choices:
            raise self.fail(path, where, f"one of {', '.join(map(repr, self.choices))}", value)
        if self.name:
            from al_bnn.paths import safe_name
            try:
                safe_name(value, f"header key '{where}'")
            except ValueError:
                raise self.fail(path, where, "a name of letters, digits, '_', '.', '+' and '-' not starting with "
                                             "'.'", value) from None
        return value


class Boolean(Schema):
    def check(self, value, where, path):
        if not isinstance(value, bool):
            raise self.fail(path, where, "true or false", value)
        return value


class Nullable(Schema):
    def __init__(self, inner: Schema):
        self.inner = inner

    def check(self, value, where, path):
        return None if value is None else self.inner.check(value, where, path)


class Scalar(Schema):
    """Any JSON scalar (a bounded string, a number, a boolean or null)."""

    def check(self, value, where, path):
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return Number(finite=False).check(value, where, path)
        return String().check(value, where, path)


class ListOf(Schema):
    def __init__(self, item: Schema, max_length: int = MAX_ROWS, min_length: int = 0):
        self.item, self.max_length, self.min_length = item, max_length, min_length

    def check(self, value, where, path):
        if not isinstance(value, list) or not self.min_length <= len(value) <= self.max_length:
            raise self.fail(path, where, f"a list of {self.min_length} to {self.max_length} entries",
                            value if not isinstance(value, list) else f"a list of {len(value)}")
        return [self.item.check(item, f"{where}[{k}]", path) for k, item in enumerate(value)]


class MappingOf(Schema):
    """A mapping of bounded string keys to values of one schema (e.g. a row of a table)."""

    def __init__(self, value: Schema, max_length: int = 10_000):
        self.value, self.max_length = value, max_length

    def check(self, value, where, path):
        if not isinstance(value, dict) or len(value) > self.max_length:
            raise self.fail(path, where, f"a mapping of at most {self.max_length} keys", value)
        return {String(200).check(k, where, path): self.value.check(v, f"{where}.{k}", path) for k, v in value.items()}


class Record(Schema):
    """A mapping with these required and optional keys; other keys are refused unless `open`."""

    def __init__(self, required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None,
                 open: bool = False):
        self.required, self.optional, self.open = dict(required), dict(optional or {}), open

    def check(self, value, where, path):
        if not isinstance(value, dict):
            raise self.fail(path, where, "a mapping", value)
        missing = [key for key in self.required if key not in value]
        if missing:
            raise ArrayFileError(f"{path}: header key '{where}' lacks {', '.join(map(repr, missing))}; the file is "
                                 "corrupt or was not written by this package")
        result = {}
        for key, item in value.items():
            schema = self.required.get(key) or self.optional.get(key)
            inner = f"{where}.{key}" if where else str(key)
            if schema is None:
                if not self.open:
                    raise ArrayFileError(f"{path}: header key '{where or '(top)'}' has an unknown key "
                                         f"{_brief(key, 60)}; the file was not written by this package")
                schema = JsonValue()
            result[key] = schema.check(item, inner, path)
        return result


class JsonValue(Schema):
    """Any JSON value of bounded depth and size (free-form metadata)."""

    def __init__(self, max_depth: int = MAX_DEPTH, max_items: int = 10_000_000):
        self.max_depth, self.max_items = max_depth, max_items

    def check(self, value, where, path):
        check_json(value, path, where, self.max_depth, self.max_items)
        return value


def check_json(value: Any, path: str | os.PathLike, where: str = "", max_depth: int = MAX_DEPTH,
               max_items: int = 10_000_000) -> None:
    """Refuse a JSON value nested deeper than `max_depth`, with more than `max_items` values in
    all, or with a string longer than MAX_STRING (walked without recursion)."""
    stack, seen = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if depth > max_depth or seen > max_items:
            what = f"nested deeper than {max_depth}" if depth > max_depth else f"more than {max_items} values"
            raise ArrayFileError(f"{path}: header{f' key {where!r}' if where else ''} is {what}; the file is "
                                 "corrupt or was not written by this package")
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str) or len(key) > MAX_STRING:
                    raise Schema.fail(str(path), where or "(top)", "a mapping with short string keys", key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if len(item) > MAX_STRING:
                raise Schema.fail(str(path), where or "(top)", f"made of strings of at most {MAX_STRING} "
                                                              "characters", item)
        elif not (item is None or isinstance(item, (bool, int, float))):
            raise Schema.fail(str(path), where or "(top)", "a JSON value", item)


ROW = MappingOf(Scalar(), 1000)  # one row of a table: metrics, history, acquisitions


def validate(header: Any, schema: Schema, path: str | os.PathLike) -> dict:
    """`header` checked against `schema` (its depth and size first, so nothing recurses without
    bound); ArrayFileError naming the file and the first key that breaks a rule."""
    check_json(header, path)
    return schema.check(header, "", str(path))


# -- the estimators' header: saved_state() --------------------------------------------------------------
def _parameters() -> Schema:
    return Record({}, {"layer_sizes": ListOf(Integer(1, MAX_WIDTH), MAX_LAYERS, 1),
                       "ensemble_size": Integer(1, MAX_ENSEMBLE), "random_state": Integer(-2**63, 2**64)},
                  open=True)


def estimator_schema(classes: Sequence[str]) -> Schema:
    """An estimator's header: its class, its parameters (the config schema checks their values
    next) and what was learned besides the weights."""
    return Record({"class": String(100, choices=list(classes)),
                   "parameters": MappingOf(Nullable(_ParameterValue()), 200),
                   "fitted": Record({"n_features_in_": Integer(1, MAX_FEATURES), "y_mean_": Number(),
                                     "y_scale_": Number(positive=True), "n_fits_": Integer(0, MAX_COUNT),
                                     "history_": ListOf(ROW)},
                                    {"calibration_": Nullable(CALIBRATION)}, open=True)}, open=True)


# the estimators' fitted variance scales (al_bnn.models.calibration.VarianceScales.as_dict)
CALIBRATION = Record({"epistemic": Number(positive=True), "aleatoric": Number(positive=True),
                      "n_rows": Integer(0, MAX_COUNT), "log_likelihood_before": Number(finite=False),
                      "log_likelihood_after": Number(finite=False)})


class _ParameterValue(Schema):
    """A hyperparameter: a scalar, or a list of them (layer sizes), within the bounds above."""

    def check(self, value, where, path):
        name = where.rsplit(".", 1)[-1]
        bounded = _parameters().required | _parameters().optional
        if name in bounded:
            return bounded[name].check(value, where, path)
        if isinstance(value, list):
            return ListOf(Scalar(), 1000).check(value, where, path)
        return Scalar().check(value, where, path)


def parameter_lower_bound(n_features: int, layer_sizes: Sequence[int], members: int = 1) -> int:
    """How many weights a network of these sizes has at least (its dense kernels), for checking a
    header's sizes against what the file holds before building it."""
    widths = [n_features, *layer_sizes, 1]
    return members * sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


# -- the learner's header: ActiveLearner.save ------------------------------------------------------------
def learner_schema(classes: Sequence[str]) -> Schema:
    return Record({"sampler": String(NAME_LENGTH), "settings": MappingOf(_SettingValue(), 200),
                   "history": ListOf(ROW), "metadata": JsonValue(), "estimator": estimator_schema(classes)},
                  open=True)


class _SettingValue(Schema):
    """A sampler setting (the config's parms keys): a scalar or a short list of scalars."""

    def check(self, value, where, path):
        if isinstance(value, list):
            return ListOf(Scalar(), 1000).check(value, where, path)
        return Scalar().check(value, where, path)


# -- the checkpoint's header: checkpoint.save_checkpoint ---------------------------------------------------------
def checkpoint_schema() -> Schema:
    run = Record({"label": String(NAME_LENGTH, name=True), "group": String(NAME_LENGTH, name=True),
                  "config": MappingOf(JsonValue(4), 50), "metrics": ListOf(ROW), "acquisitions": ListOf(ROW),
                  "selected": ListOf(ROW, 100_000_000)})
    return Record({"labels": ListOf(String(NAME_LENGTH, name=True), 10_000, 1),
                   "runs": ListOf(run, 10_000, 1), "phase": Integer(0, MAX_COUNT), "selected": Boolean(),
                   "epoch": Integer(0, MAX_COUNT), "phase_training_seconds": Number(), "finished": Boolean(),
                   "fingerprint": MappingOf(JsonValue(4), 1_000_000),
                   "weights": Integer(0, 100_000), "optimizer_state": Integer(0, 100_000)}, open=True)
