import shutil

import pytest

from inference import services, serving
from inference.engine.loading import ArtifactError, check_safe
from inference.models import ModelVersion


@pytest.fixture
def base(db):
    return services.model_version_ensure_base()


def _copy_of(base, name):
    source = services.store_path(base.weights_path)
    return services.model_version_register(name=name, source_dir=source, base_model_path=base.base_model_path)


def test_promotion_swaps_the_serving_slot(base):
    assert serving.sync_with_registry() == base.pk
    candidate = _copy_of(base, "copy-1")
    services.model_version_promote(version=candidate, reason="test")
    assert serving.sync_with_registry() == candidate.pk
    base.refresh_from_db()
    candidate.refresh_from_db()
    assert base.status == ModelVersion.Status.RETIRED
    assert [e["event"] for e in candidate.promotion_history] == ["promoted"]


def test_tampered_artifact_is_refused_and_the_old_model_keeps_serving(base):
    serving.sync_with_registry()
    candidate = _copy_of(base, "tampered")
    services.model_version_promote(version=candidate, reason="test")
    # tampered after the promotion's own verification: the serving process's check catches it
    weights = services.store_path("tampered") / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert serving.sync_with_registry() == base.pk
    assert "manifest mismatch" in serving.refusal_reason(candidate.pk)
    assert (
        serving.generate(
            "Start with 3. Add 4. What is the result?", max_new_tokens=8, temperature=0
        ).version_id
        == base.pk
    )


def test_pickle_checkpoints_and_custom_code_are_refused(base, tmp_path):
    source = services.store_path(base.weights_path)
    pickled = tmp_path / "pickled"
    shutil.copytree(source, pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ArtifactError, match="pickle"):
        check_safe(pickled)
    remote = tmp_path / "remote"
    shutil.copytree(source, remote)
    config = (remote / "config.json").read_text().replace("{", '{"auto_map": {"AutoModel": "x.Y"},', 1)
    (remote / "config.json").write_text(config)
    with pytest.raises(ArtifactError, match="trust_remote_code"):
        check_safe(remote)


def test_store_paths_cannot_escape(db):
    from cogloop.errors import ApplicationError

    with pytest.raises(ApplicationError, match="outside the model store"):
        services.store_path("../../etc")
