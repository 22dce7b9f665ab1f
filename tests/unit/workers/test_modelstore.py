"""The model store: pulls run the real ``huggingface_hub.snapshot_download``
against a local fake hub (tests/hub_server.py), imports and checks run on
files made here. Nothing reaches a real hub."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest

from tests.hub_server import HubServer
from workers.modelstore.store import (
    MANIFEST,
    ModelMissing,
    StoreError,
    import_dir,
    installed,
    list_installed,
    model_folder,
    pull,
    remove,
    require,
    verify,
)

ROOT = Path(__file__).resolve().parents[3]
REPO = "studio-tests/tiny-pipeline"
WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
# Large enough that huggingface_hub writes part of it before a dropped
# connection (it writes in 10 MiB pieces), so the retry asks for a Range.
BIG = 12 * 1024 * 1024


def _bytes(n: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 4096  # 128 KiB
    return (block * (n // len(block) + 1))[:n]


FILES = {
    "model_index.json": b'{"_class_name": "TinyPipeline"}',
    "unet/config.json": b'{"in_channels": 4}',
    WEIGHTS: _bytes(300_000, 1),
    "vae/config.json": b'{"latent_channels": 4}',
    "vae/diffusion_pytorch_model.safetensors": _bytes(200_000, 2),
    "README.md": b"# a tiny pipeline\n",
    "flax_model.msgpack": _bytes(50_000, 3),
}
PATTERNS = ["model_index.json", "*/config.json", "*.safetensors"]
MATCHING = sorted(
    ["model_index.json", "unet/config.json", WEIGHTS, "vae/config.json"]
    + ["vae/diffusion_pytorch_model.safetensors"]
)


@pytest.fixture(autouse=True)
def _online_to_the_fake_hub_only(monkeypatch):
    """The suite may run with HF_HUB_OFFLINE set so that nothing else reaches a
    hub; these tests talk to 127.0.0.1 alone, so they switch it off for
    themselves, and drop any endpoint or token the machine has configured."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer(token="s3cret-token") as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _pull(store: Path, hub: HubServer, key: str = "tiny", **kwargs: object):
    options: dict[str, object] = {
        "repo_id": REPO,
        "revision": "main",
        "allow_patterns": PATTERNS,
        "endpoint": hub.url,
        "progress": False,
    }
    options.update(kwargs)
    return pull(store, key, **options)  # type: ignore[arg-type]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files_on_disk(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST
    )


# -- pull ------------------------------------------------------------------------


def test_pull_installs_exactly_the_files_matching_allow_patterns(hub, store):
    commit = hub.add_repo(REPO, FILES)

    model = _pull(store, hub)

    assert [f.path for f in model.files] == MATCHING
    for record in model.files:
        assert record.size == len(FILES[record.path])
        assert record.sha256 == _sha256(FILES[record.path])
        assert (model.folder / record.path).read_bytes() == FILES[record.path]
    assert _files_on_disk(model.folder) == MATCHING  # no README, no .cache
    assert model.size == sum(len(FILES[p]) for p in MATCHING)
    assert sorted(hub.downloads()) == MATCHING
    manifest = json.loads((store / "tiny" / MANIFEST).read_text())
    assert manifest["revision"] == commit
    assert manifest["source"] == f"pull:{REPO}"
    assert installed(store, "tiny") == model


def test_pull_records_the_commit_a_tag_resolves_to(hub, store):
    old = {"model_index.json": b'{"v": 1}', WEIGHTS: _bytes(1000, 5)}
    tagged = hub.add_repo(REPO, old, ["v1.0"])
    hub.add_repo(REPO, FILES, ["main"])

    model = _pull(store, hub, revision="v1.0")

    assert model.revision == tagged
    assert (model.folder / WEIGHTS).read_bytes() == old[WEIGHTS]


def test_pull_accepts_a_commit_sha_without_asking_the_hub_to_resolve_it(hub, store):
    commit = hub.add_repo(REPO, FILES)

    model = _pull(store, hub, revision=commit)

    assert model.revision == commit
    assert not [r for r in hub.requests if "/revision/" in r.path]


def test_pull_sends_the_token_as_a_bearer_header_and_not_to_the_cdn(hub, store):
    hub.add_repo(REPO, FILES, private=True)

    _pull(store, hub, token="s3cret-token")

    to_hub = [r for r in hub.requests if r.server == "hub"]
    to_cdn = [r for r in hub.requests if r.server == "cdn"]
    assert to_hub and to_cdn  # the safetensors come from the "CDN"
    assert {r.authorization for r in to_hub} == {"Bearer s3cret-token"}
    assert {r.authorization for r in to_cdn} == {None}


def test_pull_without_a_token_sends_none_even_if_the_machine_has_one(
    hub, store, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", "token-of-the-machine")
    hub.add_repo(REPO, FILES)

    _pull(store, hub)

    assert {r.authorization for r in hub.requests} == {None}


def test_a_private_repo_without_the_token_is_a_clear_error(hub, store):
    hub.add_repo(REPO, FILES, private=True)

    with pytest.raises(StoreError, match="not found.*private.*token"):
        _pull(store, hub)
    assert installed(store, "tiny") is None


def test_a_wrong_token_is_refused_and_not_repeated_in_the_message(hub, store):
    hub.add_repo(REPO, FILES, private=True)

    with pytest.raises(StoreError, match="check the token") as caught:
        _pull(store, hub, token="wrong-token-value")
    assert "wrong-token-value" not in str(caught.value)
    assert installed(store, "tiny") is None


def test_an_unknown_repo_is_a_store_error_and_installs_nothing(hub, store):
    hub.add_repo(REPO, FILES)

    with pytest.raises(
        StoreError, match="repository 'studio-tests/nope' was not found"
    ):
        _pull(store, hub, repo_id="studio-tests/nope")
    assert installed(store, "tiny") is None
    assert not (store / "tiny").exists()


def test_an_unknown_revision_is_a_store_error_and_installs_nothing(hub, store):
    hub.add_repo(REPO, FILES)

    with pytest.raises(StoreError, match="revision 'v9' was not found"):
        _pull(store, hub, revision="v9")
    with pytest.raises(StoreError, match=f"revision '{'0' * 40}' was not found"):
        _pull(store, hub, revision="0" * 40)
    assert installed(store, "tiny") is None


def test_a_server_error_is_a_store_error_and_installs_nothing(hub, store):
    hub.add_repo(REPO, FILES)
    hub.fail_next(status=503, path_contains="/revision/")

    with pytest.raises(StoreError, match="answered HTTP 503"):
        _pull(store, hub)
    assert installed(store, "tiny") is None


def test_an_unreachable_hub_is_a_store_error(store, hub):
    closed = HubServer().start()
    url = closed.url
    closed.close()

    with pytest.raises(StoreError, match="could not reach the hub at"):
        _pull(store, hub, endpoint=url)


def test_offline_mode_is_named_instead_of_installing_what_is_on_disk(
    hub, store, monkeypatch
):
    import huggingface_hub.constants

    commit = hub.add_repo(REPO, FILES)
    first = _pull(store, hub, revision=commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    assert _pull(store, hub, revision=commit) == first  # needs no network
    with pytest.raises(StoreError, match="HF_HUB_OFFLINE.*models import other"):
        _pull(store, hub, key="other", revision=commit)
    with pytest.raises(StoreError, match="HF_HUB_OFFLINE"):
        _pull(store, hub)


def test_an_invalid_repo_id_is_a_store_error(hub, store):
    with pytest.raises(StoreError, match="cannot pull 'not a repo!'"):
        _pull(store, hub, repo_id="not a repo!")


def test_import_dir_reports_a_dangling_link_as_a_store_error(tmp_path, store):
    folder = _hand_copied(store / "tiny", {"model_index.json": b"{}"})
    (folder / "gone.safetensors").symlink_to(tmp_path / "nowhere.safetensors")
    source = _hand_copied(tmp_path / "usb", {"model_index.json": b"{}"})
    (source / "gone.safetensors").symlink_to(tmp_path / "nowhere.safetensors")

    with pytest.raises(StoreError, match="cannot read the files"):
        import_dir(store, "tiny", folder)
    with pytest.raises(StoreError, match="cannot copy from"):
        import_dir(store, "other", source)
    assert installed(store, "tiny") is None
    assert installed(store, "other") is None


def test_an_empty_revision_is_refused(hub, store):
    with pytest.raises(StoreError, match="give a revision"):
        _pull(store, hub, revision=" ")
    assert hub.requests == []


def test_patterns_that_match_nothing_are_named_in_the_error(hub, store):
    hub.add_repo(REPO, FILES)

    with pytest.raises(StoreError, match=r"matches allow_patterns \['\*\.gguf'\]"):
        _pull(store, hub, allow_patterns=["*.gguf"])
    assert installed(store, "tiny") is None


def test_a_connection_dropped_mid_file_is_resumed_with_a_range_request(hub, store):
    files = {"model_index.json": b"{}", WEIGHTS: _bytes(BIG, 7)}
    hub.add_repo(REPO, files)
    hub.drop_next(file=WEIGHTS, after=BIG - 1024 * 1024)

    model = _pull(store, hub, allow_patterns=None)

    gets = [r for r in hub.requests if r.file == WEIGHTS and r.method == "GET"]
    assert [r.status for r in gets] == [200, 206]
    assert gets[1].range is not None and gets[1].body_bytes < BIG
    assert {f.path: f.sha256 for f in model.files}[WEIGHTS] == _sha256(files[WEIGHTS])
    assert verify(store, "tiny") == []


def test_an_interrupted_pull_is_resumed_without_fetching_complete_files(hub, store):
    hub.add_repo(REPO, FILES)
    hub.fail_next(status=500, method="GET", file=WEIGHTS)

    with pytest.raises(StoreError, match="HTTP 500.*run the pull again"):
        _pull(store, hub)
    assert installed(store, "tiny") is None
    hub.clear_requests()

    model = _pull(store, hub)

    assert hub.downloads() == [WEIGHTS]
    assert [f.path for f in model.files] == MATCHING
    assert verify(store, "tiny") == []


def test_a_resumed_pull_of_a_newer_commit_drops_files_it_no_longer_has(hub, store):
    hub.add_repo(REPO, FILES)
    hub.fail_next(status=500, method="GET", file=WEIGHTS)
    with pytest.raises(StoreError):
        _pull(store, hub)
    newer = dict(FILES)
    del newer["vae/config.json"]
    hub.add_repo(REPO, newer)

    model = _pull(store, hub)

    assert "vae/config.json" not in [f.path for f in model.files]
    assert not (model.folder / "vae" / "config.json").exists()
    assert verify(store, "tiny") == []


def test_a_refused_file_listing_is_a_store_error(hub, store):
    hub.add_repo(REPO, FILES)
    hub.fail_next(status=403, path_contains="/tree/")

    with pytest.raises(StoreError, match="could not list the files"):
        _pull(store, hub)
    assert installed(store, "tiny") is None


def test_a_pull_killed_mid_file_is_resumed_by_the_next_pull(hub, store):
    """The process dies (power cut, OOM killer) while a large file is coming."""
    files = {
        "model_index.json": b"{}",
        "unet/config.json": b"{}",
        WEIGHTS: _bytes(BIG, 8),
    }
    hub.add_repo(REPO, files)
    hub.hold(WEIGHTS, after=1024 * 1024)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from workers.modelstore.store import pull
        pull(Path({str(store)!r}), "tiny", repo_id={REPO!r}, revision="main",
             allow_patterns=None, endpoint={hub.url!r}, progress=False)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while not hub.held.wait(timeout=0.05):
            assert child.poll() is None, "the pull ended before the large file"
            assert time.monotonic() < deadline, "the pull never reached the large file"
        partial = store / ".partial" / "tiny"
        bookkeeping = partial / ".cache" / "huggingface" / "download"
        small = ["model_index.json", "unet/config.json"]
        deadline = time.monotonic() + 30
        # huggingface_hub records a file as complete just after moving it in.
        while not all((bookkeeping / f"{p}.metadata").exists() for p in small):
            assert time.monotonic() < deadline, "the small files never completed"
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        hub.release()
    assert installed(store, "tiny") is None
    hub.clear_requests()

    model = _pull(store, hub, allow_patterns=None)

    assert hub.downloads() == [WEIGHTS]
    assert sorted(f.path for f in model.files) == sorted(files)
    assert verify(store, "tiny") == []


def test_pulling_again_when_installed_fetches_no_files(hub, store):
    commit = hub.add_repo(REPO, FILES)
    first = _pull(store, hub)
    hub.clear_requests()

    again = _pull(store, hub)

    assert again == first
    assert [r.path for r in hub.requests] == [f"/api/models/{REPO}/revision/main"]
    hub.clear_requests()
    assert _pull(store, hub, revision=commit) == first
    assert hub.requests == []


def test_a_new_commit_on_the_branch_replaces_the_install(hub, store):
    hub.add_repo(REPO, FILES)
    _pull(store, hub)
    changed = dict(FILES) | {WEIGHTS: _bytes(123_456, 9)}
    del changed["vae/config.json"]
    newer = hub.add_repo(REPO, changed)

    model = _pull(store, hub)

    assert model.revision == newer
    assert (model.folder / WEIGHTS).read_bytes() == changed[WEIGHTS]
    assert not (model.folder / "vae" / "config.json").exists()
    assert verify(store, "tiny") == []


def test_other_patterns_pull_again_and_leave_only_the_new_files(hub, store):
    hub.add_repo(REPO, FILES)
    _pull(store, hub)

    model = _pull(store, hub, allow_patterns=["*.json"])

    assert _files_on_disk(model.folder) == [
        "model_index.json",
        "unet/config.json",
        "vae/config.json",
    ]
    assert verify(store, "tiny") == []


def test_a_forced_pull_repairs_a_damaged_install(hub, store):
    hub.add_repo(REPO, FILES)
    model = _pull(store, hub)
    weights = model.folder / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[10] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert [p.kind for p in verify(store, "tiny")] == ["hash"]

    _pull(store, hub, force=True)

    assert verify(store, "tiny") == []


def test_pulling_again_repairs_a_damaged_manifest(hub, store):
    hub.add_repo(REPO, FILES)
    _pull(store, hub)
    (store / "tiny" / MANIFEST).write_text("{not json")

    model = _pull(store, hub)

    assert installed(store, "tiny") == model
    assert verify(store, "tiny") == []


def test_pull_reports_progress_in_bytes(hub, store):
    hub.add_repo(REPO, FILES)
    seen: list[tuple[int, int]] = []

    _pull(store, hub, on_progress=lambda done, total: seen.append((done, total)))

    expected = sum(len(FILES[p]) for p in MATCHING)
    assert seen[-1] == (expected, expected)
    assert all(done <= total for done, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_second_writer_on_the_same_key_is_refused(hub, store):
    hub.add_repo(REPO, FILES)
    (store / ".locks").mkdir(parents=True)
    with filelock.FileLock(str(store / ".locks" / "tiny.lock")):
        with pytest.raises(StoreError, match="another process"):
            _pull(store, hub)


# -- import ----------------------------------------------------------------------


def _hand_copied(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def test_import_dir_copies_the_matching_files_and_hashes_them(tmp_path, store):
    source = _hand_copied(tmp_path / "usb", FILES)

    model = import_dir(store, "tiny", source, allow_patterns=PATTERNS, revision="v1.0")

    assert [f.path for f in model.files] == MATCHING
    assert all(f.sha256 == _sha256(FILES[f.path]) for f in model.files)
    assert _files_on_disk(model.folder) == MATCHING
    assert model.revision == "v1.0"
    assert model.source == f"import:{source.resolve()}"
    assert (source / "README.md").exists()  # the operator's copy is left alone
    assert verify(store, "tiny") == []


def test_import_dir_skips_the_bookkeeping_of_a_hub_download(tmp_path, store):
    source = _hand_copied(tmp_path / "usb", {"model_index.json": b"{}"})
    _hand_copied(
        source, {".cache/huggingface/download/model_index.json.metadata": b"x"}
    )

    model = import_dir(store, "tiny", source)

    assert [f.path for f in model.files] == ["model_index.json"]


def test_import_dir_adopts_files_already_in_the_store_folder(tmp_path, store):
    folder = _hand_copied(store / "tiny", FILES)
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(_bytes(4096, 11))
    (folder / "linked.safetensors").symlink_to(outside)

    model = import_dir(store, "tiny", folder, allow_patterns=PATTERNS)

    assert [f.path for f in model.files] == sorted([*MATCHING, "linked.safetensors"])
    assert model.source == f"import:{folder.resolve()}"
    assert not (folder / "README.md").exists()  # the folder holds the manifest's files
    assert not (folder / "linked.safetensors").is_symlink()
    assert verify(store, "tiny") == []


def test_import_dir_of_a_missing_or_empty_folder_is_a_store_error(tmp_path, store):
    with pytest.raises(StoreError, match="does not exist"):
        import_dir(store, "tiny", tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(StoreError, match="holds no files"):
        import_dir(store, "tiny", tmp_path / "empty")
    assert installed(store, "tiny") is None


def test_import_dir_names_the_patterns_that_matched_nothing(tmp_path, store):
    source = _hand_copied(tmp_path / "usb", FILES)

    with pytest.raises(StoreError, match=r"allow_patterns \['\*\.gguf', 'q4/\*'\]"):
        import_dir(store, "tiny", source, allow_patterns=["*.gguf", "q4/*"])
    assert installed(store, "tiny") is None


def test_import_dir_refuses_a_folder_that_holds_the_store(tmp_path, store):
    _hand_copied(store, {"stray.bin": b"x"})

    with pytest.raises(StoreError, match="holds the model store"):
        import_dir(store, "tiny", store)


# -- verify ----------------------------------------------------------------------


@pytest.fixture
def sound(tmp_path, store) -> Path:
    source = _hand_copied(tmp_path / "usb", FILES)
    return import_dir(store, "tiny", source, allow_patterns=PATTERNS).folder


def test_verify_reports_nothing_on_a_sound_install(sound, store):
    assert verify(store, "tiny") == []


def test_verify_catches_a_flipped_byte(sound, store):
    weights = sound / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))

    problems = verify(store, "tiny")

    assert [(p.path, p.kind) for p in problems] == [(WEIGHTS, "hash")]
    assert _sha256(FILES[WEIGHTS]) in problems[0].detail


def test_verify_catches_a_truncated_file(sound, store):
    weights = sound / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-1])

    problems = verify(store, "tiny")

    assert [(p.path, p.kind) for p in problems] == [(WEIGHTS, "size")]


def test_verify_catches_a_deleted_file(sound, store):
    (sound / "vae" / "config.json").unlink()

    problems = verify(store, "tiny")

    assert [(p.path, p.kind) for p in problems] == [("vae/config.json", "missing")]


def test_verify_reports_files_the_manifest_does_not_list(sound, store):
    (sound / "unet" / "stray.bin").write_bytes(b"?")

    problems = verify(store, "tiny")

    assert [(p.path, p.kind) for p in problems] == [("unet/stray.bin", "extra")]


def test_verify_of_a_model_not_installed_says_how_to_pull_it(store):
    with pytest.raises(ModelMissing, match="models pull tiny"):
        verify(store, "tiny")


# -- finding, listing, removing ------------------------------------------------------


def test_require_names_the_command_that_pulls_a_missing_model(store):
    with pytest.raises(ModelMissing) as caught:
        require(store, "sdxl-turbo")

    assert str(caught.value) == (
        f"the model 'sdxl-turbo' is not in the model store ({store}); run:"
        " python manage.py models pull sdxl-turbo"
    )
    assert isinstance(caught.value, StoreError)


def test_require_returns_an_installed_model(sound, store):
    assert require(store, "tiny").folder == sound


def test_a_folder_without_a_manifest_is_not_installed(store):
    _hand_copied(store / "tiny", {"model_index.json": b"{}"})

    assert installed(store, "tiny") is None
    with pytest.raises(ModelMissing):
        require(store, "tiny")


def test_a_damaged_manifest_is_an_error_not_a_missing_model(sound, store):
    (sound / MANIFEST).write_text("{not json")

    with pytest.raises(StoreError, match="damaged") as caught:
        installed(store, "tiny")
    assert not isinstance(caught.value, ModelMissing)


def test_a_manifest_path_cannot_leave_the_model_folder(sound, store):
    manifest = json.loads((sound / MANIFEST).read_text())
    manifest["files"][0]["path"] = "../../etc/passwd"
    (sound / MANIFEST).write_text(json.dumps(manifest))

    with pytest.raises(StoreError, match="damaged"):
        verify(store, "tiny")


@pytest.mark.parametrize(
    "key", ["../etc", "a/b", "a\\b", "", ".hidden", "Upper", "with space", "x" * 101]
)
def test_model_folder_rejects_keys_that_are_not_slugs(store, key):
    with pytest.raises(StoreError, match="not a model key"):
        model_folder(store, key)


def test_model_folder_puts_a_slug_under_the_store(store):
    assert model_folder(store, "ltx-video_0.9.8") == store / "ltx-video_0.9.8"


def test_list_installed_lists_installed_models_only(tmp_path, store):
    source = _hand_copied(tmp_path / "usb", {"model_index.json": b"{}"})
    import_dir(store, "beta", source)
    import_dir(store, "alpha", source)
    _hand_copied(store / "half-copied", {"model_index.json": b"{}"})
    _hand_copied(store / ".partial" / "gamma", {"model_index.json": b"{}"})

    assert [m.key for m in list_installed(store)] == ["alpha", "beta"]
    assert list_installed(tmp_path / "no-store-yet") == []


def test_list_installed_leaves_out_a_damaged_manifest(tmp_path, store):
    source = _hand_copied(tmp_path / "usb", {"model_index.json": b"{}"})
    import_dir(store, "alpha", source)
    import_dir(store, "beta", source)
    (store / "beta" / MANIFEST).write_text("[]")

    assert [m.key for m in list_installed(store)] == ["alpha"]


def test_remove_deletes_the_model_and_is_safe_to_repeat(sound, store):
    (store / ".partial" / "tiny").mkdir(parents=True)

    remove(store, "tiny")

    assert installed(store, "tiny") is None
    assert not sound.exists()
    assert not (store / ".partial" / "tiny").exists()
    remove(store, "tiny")


def test_remove_rejects_a_key_that_is_not_a_slug(store):
    with pytest.raises(StoreError):
        remove(store, "../store")


def test_an_interrupted_pull_leaves_an_old_install_in_place(hub, store):
    hub.add_repo(REPO, FILES)
    first = _pull(store, hub)
    hub.add_repo(REPO, dict(FILES) | {WEIGHTS: _bytes(5000, 12)})
    hub.fail_next(status=500, method="GET", file=WEIGHTS)

    with pytest.raises(StoreError):
        _pull(store, hub)

    assert installed(store, "tiny") == first
    assert verify(store, "tiny") == []
    assert os.listdir(store / "tiny")  # untouched until the new one is complete


@pytest.mark.parametrize("name", [MANIFEST, ".cache/huggingface/x.json"])
def test_a_repo_holding_a_name_the_store_keeps_for_itself_is_refused(hub, store, name):
    hub.add_repo("studio/odd", {"model.safetensors": b"w" * 64, name: b"{}"})

    with pytest.raises(StoreError, match="keeps for itself"):
        _pull(store, hub, key="odd", repo_id="studio/odd", allow_patterns=None)

    assert installed(store, "odd") is None


@pytest.mark.parametrize("damaged", [WEIGHTS, "model_index.json"])
def test_a_file_damaged_in_transit_is_refused_and_fetched_again(hub, store, damaged):
    hub.add_repo(REPO, FILES)
    hub.corrupt_next(file=damaged)

    with pytest.raises(StoreError, match="arrived damaged"):
        _pull(store, hub)
    assert installed(store, "tiny") is None

    result = _pull(store, hub)

    assert {r.path for r in result.files} >= {damaged}
    assert verify(store, "tiny") == []
    fetched = [
        r
        for r in hub.requests
        if r.method == "GET" and r.file == damaged and r.status < 300
    ]
    assert len(fetched) == 2
