"""Issue 31, config and sweep items: hostile YAML (alias bombs, huge files, values YAML 1.1 and 1.2
read differently, unbounded values in messages), a sweep worker killed mid-task, and a --scheduler
address where no Dask scheduler answers."""

from __future__ import annotations

import pytest

from al_bnn.config import MAX_YAML_BYTES, ConfigError, config_from_dict, load_config, read_yaml

# -- item 10: YAML alias bombs ---------------------------------------------------------------------


def alias_bomb(levels: int, key: str = "sample_policy") -> str:
    """A few hundred bytes whose aliases expand to 9**levels strings."""
    lines = ['a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nparms:\n  {key}: *a{levels - 1}\n"


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(9))  # 9**9 strings: gigabytes once anything walks them
    assert len(bomb.read_bytes()) < 500
    with pytest.raises(ConfigError, match=r"bomb.yaml: its aliases \(\*name\) expand its 31 values to 926,177,117, "
                                          r"more than the 100,000 extra values allowed"):
        read_yaml(bomb)
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("parms: &p {sample_policy: [*p]}\n")
    with pytest.raises(ConfigError, match=r"recursive.yaml: line 1: an alias \(\*name\) repeats a value inside itself"):
        read_yaml(recursive)


def test_a_validation_message_never_prints_an_unbounded_value(tmp_path):
    smaller = tmp_path / "smaller.yaml"  # 9**6 strings: under the old loader a message of megabytes
    smaller.write_text(alias_bomb(6))
    with pytest.raises(ConfigError) as refused:
        load_config(smaller)
    assert len(str(refused.value)) < 500
    for raw in ({"parms": {"sample_policy": ["gpa" * 50] * 100_000}}, {"parms": {"sample_policy": "x" * 10**6}},
                {"al_schedule": {"al_iter": {f"k{i}": i for i in range(10**5)}}}, {"net_config": "y" * 10**6},
                {"z" * 10**6: 1}, {"parms": {"z" * 10**6: 1}}):
        with pytest.raises(ConfigError) as refused:
            config_from_dict(raw, "big.yaml")
        message = str(refused.value)
        assert len(message) < 700 and message.startswith("big.yaml: ") and "..." in message, message[:300]


# -- item 22: YAML 1.1 numbers and booleans; a config file of megabytes -----------------------------


@pytest.mark.parametrize("text,value,meaning", [
    ("seed: 010\n", "010", "8"),
    ("train_schedule:\n  num_epochs: 1:30\n", "1:30", "90"),
    ("net_config:\n  center_at_target: off\n", "off", "false"),
    ("data:\n  target: yes\n", "yes", "true"),
])
def test_a_value_yaml_1_1_and_1_2_read_differently_is_named(tmp_path, text, value, meaning):
    path = tmp_path / "ambiguous.yaml"
    path.write_text("al_schedule:\n  al_iter: 2\n" + text)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    line = 2 + text.count("\n")  # the value is on the last line
    assert message.startswith(f"{path}: line {line}: the value {value} is ") and "YAML 1.2" in message
    assert f"write {meaning} if you mean" in message and f"quote it ('{value}')" in message
    path.write_text(f"al_schedule:\n  al_iter: 2\n{text.replace(value, repr(value))}")  # quoted: text
    assert repr(value) in repr(read_yaml(path))


def test_a_number_that_only_yaml_1_2_reads_as_one_gets_a_hint():
    with pytest.raises(ConfigError, match=r"got '1e-4' \(YAML 1.1, which this package reads, takes it as text; "
                                          r"write 0.0001 instead\)"):
        config_from_dict({"net_config": {"learning_rate": "1e-4"}}, "x.yaml")


def test_a_config_file_over_the_size_cap_is_refused_before_parsing(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text("seed: 1\n#" + "x" * MAX_YAML_BYTES + "\n")  # under the old loader: read, parsed, accepted
    with pytest.raises(ConfigError, match=rf"huge.yaml: config file: {MAX_YAML_BYTES + 10:,} bytes, more than the "
                                          rf"{MAX_YAML_BYTES:,} bytes a YAML file may have"):
        load_config(huge)
