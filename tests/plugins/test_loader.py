"""registry.plugins.loader: one loader for both entry-point groups, with one-line errors."""

from __future__ import annotations

import pytest

from registry.errors import PluginError
from registry.plugins.loader import EVALUATORS, PLUGINS, describe, load
from registry.plugins.spec import Evaluator, Plugin


def test_built_ins_load_through_their_groups():
    assert {"verbose", "pairs", "helpful", "harmless"} <= set(PLUGINS.names())
    assert isinstance(load("verbose"), Plugin)
    assert isinstance(EVALUATORS.load("answer_length"), Evaluator)
    names = [d["name"] for d in describe()]
    assert names == sorted(names) and "verbose" in names


def test_unknown_names_are_refused_per_group():
    with pytest.raises(PluginError, match=r"^unknown plugin 'nope' \(installed: .*verbose"):
        load("nope")
    with pytest.raises(PluginError, match=r"^unknown evaluator 'verbose' \(installed: .*answer_length"):
        EVALUATORS.load("verbose")  # a plugin's name is not an evaluator's


def test_a_wrong_object_is_refused(test_plugins):
    test_plugins(notaplugin="registry.plugins.spec:PreferencePair")
    with pytest.raises(
        PluginError,
        match=r"^plugin 'notaplugin' \(registry\.plugins\.spec:PreferencePair\) failed to start: TypeError",
    ):
        load("notaplugin")
    test_plugins(adict="registry.plugins.loader:PLUGINS")
    with pytest.raises(PluginError, match=r"'adict' .* is a Group, not a registry Plugin$"):
        load("adict")


def test_environment_restricts_what_loads(monkeypatch):
    from registry.plugins import loader

    monkeypatch.setenv("REGISTRY_PLUGINS", "pairs")
    loader._entry_points.cache_clear()
    try:
        assert PLUGINS.names() == ["pairs"]
        with pytest.raises(PluginError, match=r"unknown plugin 'verbose' \(installed: pairs\)"):
            load("verbose")
    finally:
        monkeypatch.delenv("REGISTRY_PLUGINS")
        loader._entry_points.cache_clear()
