"""`[tuning]` is typed and checked when the config loads (daemon/tuning.py): an unknown key, a bool, a
string, zero, a negative or a huge value is refused with a message naming the key; load_config turns
that into ConfigError (the daemon's exit 2 at start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clawroomd.daemon.config import ConfigError, load_config
from clawroomd.daemon.tuning import Tuning, TuningError

BAD_VALUES = [True, False, 0, 0.0, -1, -0.5, 86400.5, 10**9, float("inf"), float("nan"), "5", None, [5]]


def test_good_values_become_floats_and_the_rest_keep_their_defaults() -> None:
    tuning = Tuning.from_table({"send_timeout": 2, "max_backoff": 0.25, "agent_timeout": 86400})
    assert tuning.send_timeout == 2.0 and type(tuning.send_timeout) is float
    assert (tuning.max_backoff, tuning.agent_timeout) == (0.25, 86400.0)
    assert tuning.guest_grace == Tuning().guest_grace == 30.0
    assert Tuning.from_table({}) == Tuning()
    assert Tuning.from_table({"keepalive_interval": 1, "dead_after": 4}).link_options == {
        "keepalive_interval": 1.0,
        "dead_after": 4.0,
    }


def test_unknown_keys_are_refused_and_named() -> None:
    with pytest.raises(TuningError) as err:
        Tuning.from_table({"send_timeout": 1, "send_timout": 1, "zzz": 2})
    assert str(err.value).startswith("unknown [tuning] key(s) send_timout, zzz; known: agent_timeout, dead_after")


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_a_bad_value_is_refused_with_the_key_and_the_value_named(value: Any) -> None:
    with pytest.raises(TuningError) as err:
        Tuning.from_table({"send_timeout": 3, "dead_after": value})
    message = str(err.value)
    assert message.startswith("[tuning] dead_after must be ")
    assert message.endswith(f"not {value!r}")


def write_config(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "clawroomd.toml"
    path.write_text(text)
    return ["--config", str(path), "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "d.sock")]


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ("agent_timeout = 0", "[tuning] agent_timeout must be from 0.001 to 86400, not 0"),
        ("guest_grace = true", "[tuning] guest_grace must be"),
        ('max_backoff = "30"', "[tuning] max_backoff must be"),
        ("send_timeout = 1e9", "[tuning] send_timeout must be"),
        ("sendtimeout = 5", "unknown [tuning] key(s) sendtimeout"),
    ],
)
def test_load_config_turns_a_bad_tuning_table_into_a_config_error(tmp_path: Path, table: str, said: str) -> None:
    argv = write_config(tmp_path, f"[tuning]\ndead_after = 9\n{table}\n")
    with pytest.raises(ConfigError) as err:
        load_config(argv, env={})
    assert said in str(err.value)


def test_load_config_reads_a_good_tuning_table(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "[tuning]\nsend_timeout = 2\ndead_after = 7.5\n"), env={})
    assert config.tuning == Tuning(send_timeout=2.0, dead_after=7.5)
    assert load_config(write_config(tmp_path, ""), env={}).tuning == Tuning()


def test_a_tuning_key_that_is_not_a_table_is_refused_as_such(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, "tuning = 5\n"), env={})
    assert "tuning must be a table" in str(err.value)
