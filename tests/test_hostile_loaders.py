"""Issue 31, loaders and authenticated state: crafted model, learner and checkpoint files are refused
with one message (never a traceback, never GiBs allocated), and a resume checks the checkpoint's
fingerprint against what it holds and the code that wrote it."""

import io
import json
import shutil
import tracemalloc
import zipfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from al_bnn.checkpoint import CheckpointError, RunResult, StackState, load_checkpoint, save_checkpoint
from al_bnn.config import config_from_dict
from al_bnn.safe_arrays import HEADER_KEY, ArrayFileError, save_arrays
from al_bnn_lab.published import compare_gpa_rand
from test_scripts import SIZES, tiny_configs

ESTIMATOR_KIND, LEARNER_KIND, CHECKPOINT_KIND = "al_bnn.estimator", "al_bnn.learner", "al_bnn checkpoint"


# -- helpers: files written member by member, as an attacker would ------------------------------------
def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_members(path, members: dict, compression=zipfile.ZIP_STORED):
    """A .npz of raw members: name -> npy bytes, or a callable writing to the member's stream."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in members.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as stream:
                content(stream) if callable(content) else stream.write(content)
    return path


def header_bytes(header) -> bytes:
    text = header if isinstance(header, str) else json.dumps(header)
    return npy_bytes(np.frombuffer(text.encode(), dtype=np.uint8))


def read_raw(path):
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive[HEADER_KEY].tobytes().decode())
        return header, {name: archive[name] for name in archive.files if name != HEADER_KEY}


def rewrite(path, header, arrays):
    header = dict(header)
    kind, version = header.pop("kind"), header.pop("version")
    save_arrays(path, kind, version, header, arrays)


def peak_bytes(call):
    """(the exception `call` raised or None, the peak of traced allocations during it)."""
    tracemalloc.start()
    try:
        call()
        error = None
    except Exception as caught:  # noqa: BLE001 - the test inspects it
        error = caught
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak


# -- fixtures: a tiny fitted model, a learner file made from it, a checkpoint made without training --------
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from al_bnn import BNNRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    model = BNNRegressor(layer_sizes=[4], n_epochs=2, batch_size=10, random_state=0).fit(X, X[:, 0])
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def learner_file(model_file):
    header, arrays = read_raw(model_file)
    estimator = {k: v for k, v in header.items() if k not in ("kind", "version")}
    path = model_file.parent / "learner.npz"
    rng = np.random.default_rng(1)
    learner_arrays = {f"estimator.{name}": value for name, value in arrays.items()}
    learner_arrays.update(X=rng.normal(size=(20, 3)), y=rng.normal(size=20))
    save_arrays(path, LEARNER_KIND, 1, {"sampler": "random", "settings": {}, "history": [], "metadata": {},
                                        "estimator": estimator}, learner_arrays)
    return path


def fake_checkpoint(path):
    """A checkpoint as save_checkpoint writes it, of a made-up state (no training needed)."""
    import al_bnn.checkpoint as checkpoint

    config = config_from_dict({"al_schedule": {"al_iter": 1, "num_al_incr": 2, "num_train_init": 3}})
    result = RunResult("lrgpa", config, "lrgpa", metrics=[{"al_iter": 0, "test_rmse": 1.0}])
    result.initial_indices = np.array([0, 4, 7])
    fingerprint = {"runs": ["lrgpa"], "lrgpa: group": "lrgpa"}
    for section, values in json.loads(json.dumps(config.to_dict())).items():  # as run_fingerprint writes it
        if isinstance(values, dict):
            fingerprint.update({f"lrgpa: {section}.{key}": value for key, value in values.items()})
        else:
            fingerprint[f"lrgpa: {section}"] = values
    fingerprint["lrgpa: data arrays"] = "housing, pool [10, 5], test [5, 5], sha256 0"
    if hasattr(checkpoint, "code_version"):
        fingerprint[checkpoint.CODE_KEY] = checkpoint.code_version()
    state = StackState(["lrgpa"], [result], [np.array([0, 4, 7, 1, 2])], phase=1, selected=True,
                       weights=[np.ones((5, 4), np.float32)], optimizer_state=[np.zeros(3, np.int64)],
                       fingerprint=fingerprint)
    save_checkpoint(path, state)
    return path


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    return fake_checkpoint(tmp_path_factory.mktemp("checkpoint") / "checkpoint_0.npz")


# -- item 9: zip bombs and members nobody asked for -----------------------------------------------------------
@pytest.mark.parametrize("attack", ["deflated_zeros", "lying_shape"])
def test_9_a_small_model_file_cannot_make_the_loader_allocate_much(model_file, tmp_path, attack):
    from al_bnn import load_estimator

    header, _ = read_raw(model_file)
    path = tmp_path / "bomb.npz"
    if attack == "deflated_zeros":  # a real zip bomb: 128 MiB of zeros in a member of ~130 KB
        n = 2**24

        def write(stream):
            header_part = io.BytesIO()
            np.lib.format.write_array_header_1_0(header_part, {"descr": "<f8", "fortran_order": False,
                                                               "shape": (n,)})
            stream.write(header_part.getvalue())
            chunk = bytes(2**20)
            for _ in range(n * 8 // len(chunk)):
                stream.write(chunk)

        write_members(path, {HEADER_KEY: header_bytes(header), "weight_0": write}, zipfile.ZIP_DEFLATED)
    else:  # an npy header declaring 8 GiB over a few bytes of data
        declared = io.BytesIO()
        np.lib.format.write_array_header_1_0(declared, {"descr": "<f8", "fortran_order": False, "shape": (2**30,)})
        write_members(path, {HEADER_KEY: header_bytes(header), "weight_0": declared.getvalue() + bytes(64)})
    assert path.stat().st_size < 2**20
    error, peak = peak_bytes(lambda: load_estimator(path))
    assert isinstance(error, ArrayFileError), repr(error)
    assert str(path) in str(error)
    assert peak < 16 * 2**20, f"peak {peak} bytes"


def test_9_members_the_header_does_not_name_are_refused_unread(checkpoint_file, model_file, tmp_path):
    header, arrays = read_raw(checkpoint_file)
    members = {HEADER_KEY: header_bytes(header), **{name: npy_bytes(a) for name, a in arrays.items()}}
    members["junk"] = npy_bytes(np.zeros(2**21))  # 16 MiB nobody asked for
    path = write_members(tmp_path / "checkpoint_0.npz", members)
    error, peak = peak_bytes(lambda: load_checkpoint(path))
    assert isinstance(error, CheckpointError) and "unexpected 'junk'" in str(error), repr(error)
    assert peak < 8 * 2**20

    from al_bnn import load_estimator
    header, arrays = read_raw(model_file)
    rewrite(tmp_path / "model.npz", header, {**arrays, "extra": np.zeros(3)})
    with pytest.raises(ArrayFileError, match="arrays the header does not name: 'extra'"):
        load_estimator(tmp_path / "model.npz")


# -- item 16: crafted headers give one message, never a traceback -------------------------------------------
def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


CRAFTED = {
    "no fitted": lambda h: h.pop("fitted"),
    "fitted a list": lambda h: h.update(fitted=[1]),
    "no class": lambda h: h.pop("class"),
    "class a list": lambda h: h.update({"class": ["BNNRegressor"]}),
    "parameters a string": lambda h: h.update(parameters="x"),
    "a million layers": lambda h: h["parameters"].update(layer_sizes=[1] * 10**6),
    "a huge layer": lambda h: h["parameters"].update(layer_sizes=[10**12]),
    "negative layer": lambda h: h["parameters"].update(layer_sizes=[-3]),
    "layer sizes nested": lambda h: h["parameters"].update(layer_sizes=[[4]]),
    "n_features negative": lambda h: h["fitted"].update(n_features_in_=-1),
    "n_features huge": lambda h: h["fitted"].update(n_features_in_=10**15),
    "n_features a string": lambda h: h["fitted"].update(n_features_in_="3"),
    "y_scale zero": lambda h: h["fitted"].update(y_scale_=0),
    "history not rows": lambda h: h["fitted"].update(history_=[[1]]),
    "n_fits a float": lambda h: h["fitted"].update(n_fits_=1.5),
    "bad activation": lambda h: h["parameters"].update(activation=["x"] * 3),
}


@pytest.mark.parametrize("name", [*CRAFTED, "deeply nested"])
def test_16_a_crafted_model_header_is_refused_with_a_message(model_file, tmp_path, name):
    from al_bnn import load_estimator

    header, arrays = read_raw(model_file)
    path = tmp_path / "crafted.npz"
    if name in CRAFTED:
        CRAFTED[name](header)
        text = json.dumps(header)
    else:
        text = deep(100_000)
    write_members(path, {HEADER_KEY: header_bytes(text), **{k: npy_bytes(v) for k, v in arrays.items()}})
    with pytest.raises(ArrayFileError) as caught:
        load_estimator(path)
    assert str(path) in str(caught.value) and len(str(caught.value)) < 1000


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                   st.text(max_size=5), st.just([]), st.just({}), st.just([1] * 2000), st.just([[[[[]]]]]))


def mutate(header, data, depth=0):
    """One mutation of a JSON header at a random place: a key deleted, a value replaced."""
    if isinstance(header, dict) and header and depth < 4 and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(header)))
        if data.draw(st.booleans()):
            header[key] = mutate(header[key], data, depth + 1)
        elif data.draw(st.booleans()):
            del header[key]
        else:
            header[key] = data.draw(LEAVES)
        return header
    if isinstance(header, list) and header and depth < 4 and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(header) - 1))
        header[index] = mutate(header[index], data, depth + 1)
        return header
    return data.draw(LEAVES)


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.data())
def test_16_fuzzed_model_learner_and_checkpoint_headers_never_traceback(model_file, learner_file, checkpoint_file,
                                                                        tmp_path_factory, data):
    from al_bnn import load_estimator, load_learner

    kind, source, load, refusal = data.draw(st.sampled_from([
        ("model", model_file, load_estimator, ArrayFileError),
        ("learner", learner_file, load_learner, ArrayFileError),
        ("checkpoint", checkpoint_file, load_checkpoint, CheckpointError)]))
    header, arrays = read_raw(source)
    mutated = mutate({k: v for k, v in header.items() if k not in ("kind", "version")}, data)
    if not isinstance(mutated, dict):
        mutated = {"value": mutated}
    path = tmp_path_factory.mktemp("fuzz") / "checkpoint_0.npz"
    save_arrays(path, header["kind"], header["version"], mutated, arrays)
    try:
        load(path)
    except refusal as error:
        assert len(str(error)) < 2000
    except (ArrayFileError, CheckpointError) as error:
        pytest.fail(f"{kind}: {type(error).__name__}, not {refusal.__name__}: {error}")


def test_16_crafted_checkpoint_headers_are_checkpoint_errors(checkpoint_file, tmp_path):
    header, arrays = read_raw(checkpoint_file)
    for change in (lambda h: h.update(weights=10**9), lambda h: h.update(weights=-1), lambda h: h.pop("runs"),
                   lambda h: h["runs"][0].update(config=[1]), lambda h: h.update(labels="lrgpa"),
                   lambda h: h["runs"][0].pop("metrics"), lambda h: h.update(phase="1")):
        crafted = json.loads(json.dumps(header))
        change(crafted)
        path = tmp_path / "checkpoint_0.npz"
        rewrite(path, crafted, arrays)
        with pytest.raises(CheckpointError, match="checkpoint refused"):
            load_checkpoint(path)


# -- items 1 and 17: a resume checks what it resumes, and the code that wrote it -----------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory, needs_housing):
    folder = tmp_path_factory.mktemp("finished")
    out = folder / "results"
    assert compare_gpa_rand([*tiny_configs(folder), *SIZES, "--results-dir", str(out)]) == 0
    return out


def copy_of(finished, tmp_path):
    out = tmp_path / "inside" / "copy"
    shutil.copytree(finished, out)
    return out


def edit_checkpoint(out, edit):
    header, arrays = read_raw(out / "checkpoint_0.npz")
    edit(header)
    rewrite(out / "checkpoint_0.npz", header, arrays)


def rename_in_fingerprint(fingerprint: dict, old: str, new: str) -> dict:
    renamed = {(new + key[len(old):] if key.startswith(f"{old}: ") else key): value
               for key, value in fingerprint.items()}
    renamed["runs"] = [new if label == old else label for label in renamed["runs"]]
    renamed[f"{new}: group"] = new
    return renamed


def test_1_a_label_edited_in_run_yaml_and_the_fingerprint_only_is_refused(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    manifest = yaml.safe_load((out / "run.yaml").read_text())
    manifest["runs"][0].update(label="other", group="other")
    (out / "run.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    edit_checkpoint(out, lambda h: h.update(fingerprint=rename_in_fingerprint(h["fingerprint"], "lrgpa", "other")))
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint refused" in err and "fingerprint" in err and "Traceback" not in err
    assert not (out / "metrics_other.csv").exists()


def test_1_a_hostile_label_edited_everywhere_writes_nothing_outside(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    hostile = "x/../../../HIJACK"
    manifest = yaml.safe_load((out / "run.yaml").read_text())
    manifest["runs"][0].update(label=hostile)
    (out / "run.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))

    def edit(header):
        header["labels"][0] = header["runs"][0]["label"] = hostile
        fingerprint = rename_in_fingerprint(header["fingerprint"], "lrgpa", hostile)
        fingerprint[f"{hostile}: group"] = "lrgpa"
        header["fingerprint"] = fingerprint
    edit_checkpoint(out, edit)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    assert "HIJACK" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing new anywhere, inside or out


def test_1_a_schedule_edited_in_run_yaml_checkpoint_and_fingerprint_is_caught(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    manifest = yaml.safe_load((out / "run.yaml").read_text())
    for run in manifest["runs"]:
        run["config"]["al_schedule"]["num_al_incr"] = 5
    (out / "run.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))

    def edit(header):
        for run in header["runs"]:
            run["config"]["al_schedule"]["num_al_incr"] = 5
            header["fingerprint"][f"{run['label']}: al_schedule.num_al_incr"] = 5
    edit_checkpoint(out, edit)
    metrics = (out / "metrics_lrgpa.csv").read_bytes()
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint refused" in err and "training set" in err
    assert (out / "metrics_lrgpa.csv").read_bytes() == metrics


def test_17_a_resume_with_changed_code_is_refused_unless_allowed_and_then_logged(finished, tmp_path, capsys,
                                                                                monkeypatch):
    import al_bnn.checkpoint as checkpoint

    out = copy_of(finished, tmp_path)
    monkeypatch.setattr(checkpoint, "code_version", lambda: "al_bnn 9.9.9, source sha256 0123456789abcdef")
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "al_bnn 9.9.9" in err and "--allow-code-change" in err and "Traceback" not in err
    assert compare_gpa_rand(["--resume", str(out), "--quiet", "--allow-code-change"]) == 0
    log = (out / "log.txt").read_text()
    assert "resuming with changed code" in log and "al_bnn 9.9.9" in log
    assert (out / "metrics_lrgpa.csv").read_bytes() == (finished / "metrics_lrgpa.csv").read_bytes()


def test_17_the_code_version_is_recorded_in_run_yaml_and_the_checkpoint(finished):
    from al_bnn.checkpoint import CODE_KEY, code_version

    assert yaml.safe_load((finished / "run.yaml").read_text())[CODE_KEY] == code_version()
    assert load_checkpoint(finished / "checkpoint_0.npz").fingerprint[CODE_KEY] == code_version()
