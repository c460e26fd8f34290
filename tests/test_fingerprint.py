"""One fingerprint hash (al_bnn.checkpoint.digest) for the checkpoint's run fingerprint, the sweep's run keys
and config fingerprint, and suggest's file digests: each part type is hashed as the fingerprints that use
it always hashed it, so recorded run keys, fingerprints and manifests stay valid."""

import hashlib
import io

import numpy as np
import yaml

from al_bnn.checkpoint import code_version, data_fingerprint, digest


def sha256(*chunks: bytes) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def test_a_value_is_hashed_as_its_yaml_with_sorted_keys():
    value = {"parms": {"sampler": "lrgpa", "n_mc_samples": 100}, "seed": 3, "data": {"path": None}}
    assert digest(value) == sha256(yaml.safe_dump(value, sort_keys=True).encode())
    assert digest(value, length=16) == digest(value)[:16]
    assert digest(value) == digest({"seed": 3, "data": {"path": None},
                                    "parms": {"n_mc_samples": 100, "sampler": "lrgpa"}})  # key order does not count


def test_bytes_text_files_and_streams_are_hashed_as_their_bytes(tmp_path):
    content = b"a,b\n1,2\n" * 200_000  # more than one read block
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    assert digest(path) == digest(io.BytesIO(content)) == digest(content) == sha256(content)
    assert digest("abc\0", path) == sha256(b"abc\0", content)


def test_an_array_is_hashed_with_its_dtype_and_shape():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert digest(array) == sha256(b"<f4(3, 4)", array.tobytes())
    assert digest(array.T) == sha256(b"<f4(4, 3)", np.ascontiguousarray(array.T).tobytes())
    assert digest(array) != digest(array.reshape(4, 3)) != digest(array.astype(np.float64))


def test_the_data_fingerprint_covers_every_array_and_the_target_scale():
    class Data:
        pool_x, pool_y = np.ones((4, 2)), np.zeros(4)
        test_x, test_y = np.ones((2, 2)), np.zeros(2)
        target_scale = 2.5

    expected = sha256(*(chunk for array in (Data.pool_x, Data.pool_y, Data.test_x, Data.test_y)
                        for chunk in (f"{array.dtype.str}{array.shape}".encode(), array.tobytes())), b"2.5")
    assert data_fingerprint(Data) == expected
    Data.target_scale = 2.0
    assert data_fingerprint(Data) != expected


def test_the_code_version_names_the_package_version_and_a_source_digest():
    from al_bnn.version import __version__

    version = code_version()
    assert version.startswith(f"al_bnn {__version__}, source sha256 ") and len(version.split()[-1]) == 16
