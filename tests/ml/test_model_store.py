"""Stored models are signed, and nothing unsigned is ever unpickled (issue #13, finding 2).

A row of `ml_models` can be written by anyone with write access to the warehouse, and its
`artifact` is a pickle: loading it used to run whatever code it named. These tests write the
attacker's rows into a real warehouse (SQLite and PostgreSQL) and load them through the same
`load_model` the approval flow, `timbel risk`, the drift sensor and the assets use."""

from __future__ import annotations

import io
import stat
import sys
import threading
from pathlib import Path

import joblib
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, update

from timbel_dagster.cli.app import main
from timbel_dagster.ml.models import signing as model_signing
from timbel_dagster.ml.models.signing import ModelKey, ModelKeyError, derive_key, model_key, sign
from timbel_dagster.ml.models.store import ModelSignatureError, load_model, save_model
from timbel_dagster.notify.email import read_unsubscribe_token, unsubscribe_token
from timbel_dagster.settings import get_settings, load_settings
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ml import MlModel

KEY = ModelKey(b"k" * 32, "TIMBEL_SECRET_KEY")
OTHER_KEY = ModelKey(b"o" * 32, "TIMBEL_SECRET_KEY")
FEATURES = ["la", "ld"]


class WritesMarker:
    """What an attacker stores as the artifact: unpickling it writes a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _payload(marker: Path) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(WritesMarker(marker), buffer)
    return buffer.getvalue()


def _estimator():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0, 0], [1, 1], [0, 1], [1, 0]], [0, 1, 1, 0])


def _save(url: str, name: str = "risk_model", key: ModelKey = KEY) -> int:
    with get_engine(url).begin() as connection:
        return save_model(
            connection,
            name,
            _estimator(),
            code_version="risk-1",
            features=FEATURES,
            evaluation={"auc": 0.9},
            n_train=3,
            n_test=1,
            trained_until=None,
            reason="manual",
            key=key,
        )


def _insert(url: str, artifact: bytes, signature: str | None, **fields: object) -> None:
    values = {
        "name": "risk_model",
        "version": 1,
        "code_version": "risk-1",
        "n_train": 3,
        "n_test": 1,
        "features": FEATURES,
        "evaluation": {"auc": 0.9},
        "reason": "manual",
    } | fields
    with get_engine(url).begin() as connection:
        connection.execute(
            insert(MlModel).values(**values, artifact=artifact, artifact_signature=signature)
        )


def _load(url: str, key: ModelKey = KEY, version: int | None = None):
    with get_engine(url).connect() as connection:
        return load_model(connection, "risk_model", version, key=key)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings with TIMBEL_HOME in the test's directory and no TIMBEL_SECRET_KEY."""
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TIMBEL_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def test_a_signed_model_round_trips(warehouse_url: str) -> None:
    assert _save(warehouse_url) == 1
    stored = _load(warehouse_url)
    assert (stored.name, stored.version, stored.features) == ("risk_model", 1, FEATURES)
    assert list(stored.estimator.predict([[1, 1], [0, 0]])) == [1, 0]
    with get_engine(warehouse_url).connect() as connection:
        signature = connection.execute(select(MlModel.artifact_signature)).scalar_one()
    assert signature.startswith("hmac-sha256:") and len(signature) == len("hmac-sha256:") + 64


def test_a_model_pickled_before_ml_moved_into_sub_packages_still_loads(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models stored before #14 name `timbel_dagster.ml.risk_model` (and its neighbours) in
    their pickle; the store maps those paths onto `timbel_dagster.ml.risk.*`."""
    from timbel_dagster.ml.risk import model as risk_model

    old = "timbel_dagster.ml.risk_model"
    with monkeypatch.context() as before_the_move:
        before_the_move.setitem(sys.modules, old, risk_model)
        before_the_move.setattr(risk_model.RiskThresholds, "__module__", old)
        with get_engine(warehouse_url).begin() as connection:
            save_model(
                connection,
                "risk_model",
                risk_model.RiskThresholds(0.1, 0.7),
                code_version="risk-1",
                features=FEATURES,
                evaluation={"auc": 0.9},
                n_train=3,
                n_test=1,
                trained_until=None,
                reason="manual",
                key=KEY,
            )
    monkeypatch.setitem(sys.modules, old, risk_model)  # so that the alias goes at teardown
    monkeypatch.delitem(sys.modules, old)
    with get_engine(warehouse_url).connect() as connection:
        artifact = connection.execute(select(MlModel.artifact)).scalar_one()
    assert old.encode() in artifact

    stored = _load(warehouse_url)
    assert stored.estimator == risk_model.RiskThresholds(0.1, 0.7)
    assert type(stored.estimator) is risk_model.RiskThresholds


@pytest.mark.parametrize("signature", [None, "", "hmac-sha256:" + "0" * 64, "forged"])
def test_a_crafted_pickle_is_refused_before_it_runs(
    warehouse_url: str, tmp_path: Path, signature: str | None
) -> None:
    marker = tmp_path / "marker"
    artifact = _payload(marker)
    _insert(warehouse_url, artifact, signature)

    with pytest.raises(ModelSignatureError) as refused:
        _load(warehouse_url)
    assert not marker.exists()
    message = str(refused.value)
    assert "\n" not in message
    if signature:
        assert message == (
            "model risk_model v1 does not match its signature, so it is not loaded: its "
            "artifact, name, version, code version or features were changed after it was "
            "signed, or TIMBEL_SECRET_KEY was set or changed since it was signed; retrain it "
            "with the ml_retrain job or `dagster asset materialize -m "
            "timbel_dagster.definitions --select ml/risk_model`"
        )
    else:
        assert message == (
            "model risk_model v1 was stored without a signature (before signing existed, or "
            "written outside Timbel), so it is not loaded: retrain it with the ml_retrain job "
            "or `dagster asset materialize -m timbel_dagster.definitions --select "
            "ml/risk_model`"
        )
    # The payload is live: unpickled as the old code did, it runs.
    joblib.load(io.BytesIO(artifact))
    assert marker.read_text() == "pwned"


def test_a_pickle_signed_with_another_key_is_refused(warehouse_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    artifact = _payload(marker)
    attacker = sign(
        OTHER_KEY,
        name="risk_model",
        version=1,
        code_version="risk-1",
        features=FEATURES,
        artifact=artifact,
    )
    _insert(warehouse_url, artifact, attacker)
    with pytest.raises(ModelSignatureError, match="does not match its signature"):
        _load(warehouse_url)
    assert not marker.exists()


@pytest.mark.parametrize(
    "moved",
    [
        {"version": 2},
        {"name": "other_model"},
        {"code_version": "risk-2"},
        {"features": ["ld", "la"]},
    ],
    ids=["version", "name", "code_version", "features"],
)
def test_a_signed_artifact_under_another_identity_is_refused(
    warehouse_url: str, moved: dict
) -> None:
    _save(warehouse_url)
    with get_engine(warehouse_url).connect() as connection:
        genuine = connection.execute(select(MlModel.artifact, MlModel.artifact_signature)).one()
    _insert(warehouse_url, genuine.artifact, genuine.artifact_signature, **({"version": 2} | moved))
    name = moved.get("name", "risk_model")
    version = moved.get("version", 2)
    with get_engine(warehouse_url).connect() as connection, pytest.raises(ModelSignatureError) as e:
        load_model(connection, name, version, key=KEY)
    assert str(e.value).startswith(f"model {name} v{version} does not match its signature")
    assert _load(warehouse_url, version=1).version == 1  # the genuine row still loads


def test_one_changed_byte_is_refused(warehouse_url: str) -> None:
    _save(warehouse_url)
    with get_engine(warehouse_url).begin() as connection:
        artifact = connection.execute(select(MlModel.artifact)).scalar_one()
        tampered = bytearray(artifact)
        tampered[len(tampered) // 2] ^= 0x01
        connection.execute(update(MlModel).values(artifact=bytes(tampered)))
    with pytest.raises(ModelSignatureError, match=r"^model risk_model v1 does not match"):
        _load(warehouse_url)


def test_the_cli_and_a_deployment_request_refuse_an_unsigned_model(
    warehouse_url: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    _insert(warehouse_url, _payload(marker), None)
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    shown = CliRunner().invoke(main, ["risk", "model"])
    assert shown.exit_code == 2
    assert shown.output.strip() == (
        "timbel: error: model risk_model v1 was stored without a signature (before signing "
        "existed, or written outside Timbel), so it is not loaded: retrain it with the "
        "ml_retrain job or `dagster asset materialize -m timbel_dagster.definitions --select "
        "ml/risk_model`"
    )
    drift = CliRunner().invoke(main, ["risk", "drift"])
    assert drift.exit_code == 2 and "was stored without a signature" in drift.output
    assert not marker.exists()


def test_a_key_file_is_made_once_private_and_shared_by_concurrent_first_uses(
    home: Path,
) -> None:
    settings = get_settings()
    keys: list[ModelKey] = []
    threads = [threading.Thread(target=lambda: keys.append(model_key(settings))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    path = home / "keys" / "model-signing.key"
    assert {k.secret for k in keys} == {bytes.fromhex(path.read_text())}
    assert {k.source for k in keys} == {str(path.resolve())}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # No temporary file is left behind.
    assert [p.name for p in path.parent.iterdir()] == ["model-signing.key"]
    assert model_key(get_settings()).secret == keys[0].secret  # read again, not replaced


def test_a_model_signed_on_another_host_names_the_shared_key_setting(
    warehouse_url: str, home: Path
) -> None:
    _save(warehouse_url, key=OTHER_KEY)  # another host's key file
    with get_engine(warehouse_url).connect() as connection, pytest.raises(ModelSignatureError) as e:
        load_model(connection, "risk_model")  # this host's key, from TIMBEL_HOME
    path = home.resolve() / "keys" / "model-signing.key"
    assert (
        f"or it was signed on another host: this one signs with {path} because "
        "TIMBEL_SECRET_KEY is not set; where the Dagster run worker, webserver and CLI run on "
        "different hosts, set the same TIMBEL_SECRET_KEY on all of them; retrain it"
    ) in str(e.value)


def test_the_default_key_signs_and_verifies(warehouse_url: str, home: Path) -> None:
    with get_engine(warehouse_url).begin() as connection:
        save_model(
            connection,
            "risk_model",
            _estimator(),
            code_version="risk-1",
            features=FEATURES,
            evaluation={},
            n_train=3,
            n_test=1,
            trained_until=None,
            reason="manual",
        )
    with get_engine(warehouse_url).connect() as connection:
        assert load_model(connection, "risk_model").version == 1
    assert (home / "keys" / "model-signing.key").exists()


def test_the_secret_key_gives_a_model_key_of_its_own(tmp_path: Path) -> None:
    settings = load_settings(timbel_home=tmp_path, timbel_secret_key="s3cret")
    key = model_key(settings)
    assert key == ModelKey(derive_key("s3cret"), "TIMBEL_SECRET_KEY")
    assert key.secret not in (b"s3cret", derive_key("other")) and len(key.secret) == 32
    assert "secret=" not in repr(key)
    assert not (tmp_path / "keys").exists()  # no key file when the setting gives the key
    # A token signed with the model key is not an unsubscribe token, and the reverse.
    token = unsubscribe_token("ana", "email", "deploy", key.secret.hex())
    with pytest.raises(ValueError, match="invalid or tampered unsubscribe link"):
        read_unsubscribe_token(token, "s3cret")


@pytest.mark.parametrize("content", ["", "not hex at all\n", "ab" * 16 + "\n"])
def test_a_damaged_key_file_is_one_line_naming_it(home: Path, content: str) -> None:
    path = home / "keys" / "model-signing.key"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ModelKeyError) as error:
        model_key(get_settings())
    message = str(error.value)
    assert message.startswith(f"{path.resolve()}: not a model-signing key")
    assert "\n" not in message and "delete it to make a new one" in message


def test_a_home_that_cannot_hold_the_key_names_the_way_out(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("a file where TIMBEL_HOME should be a directory")
    with pytest.raises(ModelKeyError) as error:
        model_signing.read_or_create_key_file(tmp_path / "home" / "keys" / "model-signing.key")
    message = str(error.value)
    assert message.startswith(f"cannot create the model-signing key {tmp_path / 'home'}")
    assert message.endswith("make TIMBEL_HOME writable or set TIMBEL_SECRET_KEY")
