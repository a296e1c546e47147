"""Registering a model: the command refuses what serving must not load (naming why) and changes
nothing then; it copies a safetensors directory into the store with its manifest and can make
it the active version; a fresh install registers BASE_MODEL at first start, exactly once."""

import shutil
import threading
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from inference import services
from inference.engine import loading
from inference.models import ModelVersion

TINY = Path(django_settings.BASE_DIR) / "inference" / "engine" / "cogloop_tiny"


@pytest.fixture
def store(settings, tmp_path):
    settings.MODEL_STORE = tmp_path / "store"
    settings.MODEL_STORE.mkdir()
    return settings.MODEL_STORE


@pytest.fixture
def model_dir(tmp_path):
    target = tmp_path / "my-model"
    shutil.copytree(TINY, target)
    (target / loading.MANIFEST_NAME).unlink()  # a directory as a user has it, no manifest
    return target


@pytest.mark.parametrize(
    "change, reason",
    [
        (
            lambda d: (d / "pytorch_model.bin").write_bytes(b"\x80\x04pickle"),
            "pickle checkpoints are refused",
        ),
        (lambda d: (d / "optimizer.pt").write_bytes(b"\x80\x04pickle"), "pickle checkpoints are refused"),
        (lambda d: (d / "extra.pkl").write_bytes(b"\x80\x04pickle"), "pickle checkpoints are refused"),
        (lambda d: (d / "config.json").unlink(), "no config.json"),
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer"),
        (lambda d: (d / "model.safetensors").unlink(), "no safetensors"),
        (lambda d: (d / "modeling_custom.py").write_text("import os"), "ship code"),
    ],
    ids=["bin", "pt", "pkl", "no-config", "no-tokenizer", "no-safetensors", "code"],
)
def test_register_refuses_what_serving_must_not_load_and_says_why(db, store, model_dir, change, reason):
    change(model_dir)
    with pytest.raises(CommandError, match=reason):
        call_command("model", "register", str(model_dir), "--activate")
    assert not ModelVersion.objects.exists()
    assert list(store.iterdir()) == []


def test_register_refuses_a_missing_directory_and_a_bad_name(db, store, model_dir, tmp_path):
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("model", "register", str(tmp_path / "absent"))
    with pytest.raises(CommandError, match="version name"):
        call_command("model", "register", str(model_dir), "--name", "../escape")
    assert not ModelVersion.objects.exists() and list(store.iterdir()) == []


def test_register_copies_with_a_manifest_and_activates(db, store, model_dir):
    out = StringIO()
    call_command("model", "register", str(model_dir), stdout=out)
    candidate = ModelVersion.objects.get(name="my-model")
    assert (
        candidate.status == ModelVersion.Status.CANDIDATE
        and "registered my-model (candidate)" in out.getvalue()
    )
    target = store / "my-model"
    loading.verify_manifest(target, candidate.manifest)
    assert "model.safetensors" in candidate.manifest and candidate.sha256 == loading.manifest_digest(
        candidate.manifest
    )

    call_command("model", "register", str(model_dir), "--name", "mine-2", "--activate", stdout=StringIO())
    active = ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE)
    assert active.name == "mine-2" and active.promoted_at is not None
    assert [e["event"] for e in active.promotion_history] == ["promoted"]

    with pytest.raises(CommandError, match="exists"):
        call_command("model", "register", str(model_dir), "--name", "mine-2")
    out = StringIO()
    call_command("model", "list", stdout=out)
    assert "mine-2" in out.getvalue() and "active" in out.getvalue() and "my-model" in out.getvalue()


def test_a_registered_and_activated_version_is_served(db, store, model_dir):
    from inference import serving

    call_command("model", "register", str(model_dir), "--activate", stdout=StringIO())
    assert serving.sync_with_registry() == ModelVersion.objects.get(name="my-model").pk


def test_base_model_is_registered_and_activated_when_the_registry_is_empty(db, store, model_dir, settings):
    settings.BASE_MODEL = model_dir
    version = services.model_version_register_base_if_empty()
    assert version.name == "my-model-base" and version.status == ModelVersion.Status.ACTIVE
    assert services.model_version_register_base_if_empty() is None
    assert ModelVersion.objects.count() == 1
    # the demo's and the tests' path finds the same version instead of registering another
    assert services.model_version_ensure_base().pk == version.pk


def test_base_model_is_not_registered_beside_an_existing_version(db, store, model_dir, settings):
    call_command("model", "register", str(model_dir), "--name", "chosen", stdout=StringIO())
    settings.BASE_MODEL = model_dir
    assert services.model_version_register_base_if_empty() is None
    assert list(ModelVersion.objects.values_list("name", flat=True)) == ["chosen"]


def test_an_unsafe_base_model_is_refused_at_start(db, store, model_dir, settings):
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    settings.BASE_MODEL = model_dir
    with pytest.raises(Exception, match="pickle checkpoints are refused"):
        services.model_version_register_base_if_empty()
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_first_start_registration_happens_once_when_processes_race(store, model_dir, settings):
    settings.BASE_MODEL = model_dir
    start = threading.Barrier(4)
    results: list[object] = []

    def serving_process_starts() -> None:
        try:
            start.wait()
            results.append(services.model_version_register_base_if_empty())
        except Exception as exc:  # collected: a failure in a thread must fail the test
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=serving_process_starts) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not [r for r in results if isinstance(r, Exception)], results
    registered = [r for r in results if r is not None]
    assert len(results) == 4 and len(registered) == 1
    assert ModelVersion.objects.count() == 1
    assert ModelVersion.objects.get().status == ModelVersion.Status.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_the_inference_role_registers_base_model_when_it_starts(store, model_dir):
    """A fresh install's serving process (inference.wsgi) registers BASE_MODEL on its own."""
    import os
    import subprocess
    import sys

    db = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}"
        f":{db.get('PORT') or 5432}/{db['NAME']}",
        "BASE_MODEL": str(model_dir),
        "MODEL_STORE": str(store),
        "MODEL_WATCH_INTERVAL": "0",  # no watcher: this process only starts and registers
    }
    wait = (
        "import threading, inference.wsgi\n"
        "[t.join(60) for t in threading.enumerate() if t.name == 'register-base-model']\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wait], cwd=django_settings.BASE_DIR, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    version = ModelVersion.objects.get()
    assert (version.name, version.status) == ("my-model-base", ModelVersion.Status.ACTIVE)
