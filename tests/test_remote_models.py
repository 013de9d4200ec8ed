"""Model files, blocklists and word lists on object storage (pipelines/io/models.py).

Every s3:// call goes over HTTP to moto's standalone server (``tests/s3server.py``, a
subprocess on 127.0.0.1), some through the fault proxy with no faults, which logs each
request it forwards: how the tests see which endpoint was asked, and whether anything was.
Nothing is mocked in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from conftest import DEMO, REPO, WARC_DIR, shard_hashes
from s3server import FaultProxy, serving

from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.io import models
from pipelines.stage import TaskContext
from stages.language.langid import BUNDLED_MODEL, BUNDLED_SHA256

BUCKET = "thresher-models"
MODELS = f"s3://{BUCKET}/models"
LID = f"{MODELS}/lid.176.ftz"
BLOCKLIST = b"# blocked in the demo's WARCs\nallenai.org\n"
BAD_WORDS = b"darn\nheck no\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")  # the CLI subprocesses' cache too
    with serving(tmp_path_factory.mktemp("moto") / "moto.log", BUCKET,
                 env={"THRESHER_CACHE": str(cache)}) as srv:
        client = srv.client()
        client.upload_file(str(BUNDLED_MODEL), BUCKET, "models/lid.176.ftz")
        client.put_object(Bucket=BUCKET, Key="models/blocklist.txt", Body=BLOCKLIST)
        client.put_object(Bucket=BUCKET, Key="models/bad_words.txt", Body=BAD_WORDS)
        yield srv


@pytest.fixture
def proxy(server):
    """A fault-free proxy before the server: ``proxy.log`` lists every request sent."""
    with FaultProxy(server.port, fraction=0.0) as p:
        yield p


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache, and a process that has verified nothing yet."""
    monkeypatch.setenv("THRESHER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_VERIFIED", {})
    return tmp_path / "cache" / "models"


def gets(proxy: FaultProxy, key: str) -> int:
    return sum(1 for line, _, _ in proxy.log if line.startswith("GET ") and key in line)


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"thresher {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def demo_run(tmp: Path, name: str, langid: dict, blocklist: list[str],
             storage_options: dict | None = None) -> Path:
    """The demo with a url_filter after langid; its model and list as given."""
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["input"]["paths"] = [str(WARC_DIR / "*.warc.gz")]
    if storage_options:
        cfg["input"]["storage_options"] = storage_options
    cfg["executor"] = {"kind": "local", "workers": 2}
    stages = cfg["stages"]
    i = next(i for i, s in enumerate(stages) if s["stage"] == "langid")
    stages[i] = {**stages[i], **langid}
    stages.insert(i + 1, {"stage": "url_filter", "blocklist_file": blocklist})
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp / name
    run_cli("run", str(path), "-o", str(out), "--quiet")
    return out


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def local_models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("local-models")
    (d / "lid.176.ftz").write_bytes(BUNDLED_MODEL.read_bytes())
    (d / "blocklist.txt").write_bytes(BLOCKLIST)
    return d


@pytest.fixture(scope="module")
def local_run(local_models, tmp_path_factory) -> Path:
    return demo_run(tmp_path_factory.mktemp("local"), "local",
                    {"model": str(local_models / "lid.176.ftz")},
                    [str(local_models / "blocklist.txt")])


@pytest.fixture(scope="module")
def run_proxy(server):
    """The proxy the s3 run's ``input.storage_options`` name (reproduce asks it too)."""
    with FaultProxy(server.port, fraction=0.0, max_seconds=3600) as p:
        yield p


@pytest.fixture(scope="module")
def s3_run(run_proxy, tmp_path_factory) -> tuple[Path, FaultProxy]:
    """The demo with its model and blocklist on s3, reached through ``input.storage_options``
    (the environment names the server directly; the options name the proxy)."""
    out = demo_run(tmp_path_factory.mktemp("s3"), "s3",
                   {"model": LID, "model_sha256": BUNDLED_SHA256}, [f"{MODELS}/blocklist.txt"],
                   storage_options={"s3": {"endpoint_url": run_proxy.endpoint}})
    return out, run_proxy


# ------------------------------------------------------------------------------- runs


def test_models_on_s3_give_the_local_bytes_and_the_manifest_names_the_urls(local_run, s3_run):
    s3, proxy = s3_run
    assert len(shard_hashes(local_run)) >= 4
    assert shard_hashes(s3) == shard_hashes(local_run)
    def dropped(run):
        return json.loads((run / "stats.json").read_text())["stages"]["url_filter"]["dropped"]

    assert dropped(s3) == dropped(local_run) == {"blocked_domain": 5}  # the list decided
    assert manifest(s3)["models"] == [
        {"path": f"{MODELS}/blocklist.txt", "sha256": sha256(BLOCKLIST)},
        {"path": LID, "sha256": BUNDLED_SHA256}]
    # the engine handed input.storage_options to the stages: they asked the proxy
    assert gets(proxy, "/models/lid.176.ftz") >= 1 and gets(proxy, "/models/blocklist.txt") >= 1
    cached = Path(os.environ["THRESHER_CACHE"]) / "models" / BUNDLED_SHA256 / "lid.176.ftz"
    assert sha256(cached.read_bytes()) == BUNDLED_SHA256


def test_reproduce_remaps_s3_models_to_local_copies(s3_run, local_models, tmp_path):
    s3, proxy = s3_run
    out = tmp_path / "from-local"
    before = len(proxy.log)
    proc = run_cli("reproduce", str(s3 / "manifest.json"), str(out),
                   "--remap", f"{MODELS}={local_models}")
    assert "every shard matches the manifest byte for byte" in proc.stdout
    assert len(proxy.log) == before  # checked and read the local copies, not s3
    assert shard_hashes(out) == shard_hashes(s3)
    # the re-run read the local copies: a list inside a list was remapped too
    assert {m["path"] for m in manifest(out)["models"]} == {
        str(local_models / "lid.176.ftz"), str(local_models / "blocklist.txt")}


def test_reproduce_refuses_a_changed_remote_model(server, s3_run, tmp_path):
    s3, _ = s3_run
    client = server.client()
    changed = BLOCKLIST + b"example.com\n"
    client.put_object(Bucket=BUCKET, Key="models/blocklist.txt", Body=changed)
    try:
        out = tmp_path / "changed"
        proc = run_cli("reproduce", str(s3 / "manifest.json"), str(out), check=False)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1] == (
            f"thresher: error: model {MODELS}/blocklist.txt changed since the snapshot "
            "(sha256 differs)")
        assert not out.exists()
    finally:
        client.put_object(Bucket=BUCKET, Key="models/blocklist.txt", Body=BLOCKLIST)


# ------------------------------------------------------------------------------ stages


def langid(**params):
    st = make_spec("langid", languages=["en"], **params).build()
    st.setup()
    return st


def test_a_wrong_sha256_fails_with_one_line_naming_the_url(server, fresh_cache, tmp_path):
    wrong = "0" * 64
    with pytest.raises(UserError) as err:
        langid(model=LID, model_sha256=wrong)
    assert str(err.value) == (f"stage langid: model {LID} has sha256 {BUNDLED_SHA256}, "
                              f"expected {wrong}")
    assert not fresh_cache.exists() or [p.name for p in fresh_cache.iterdir()] == []
    cfg = yaml.safe_load(DEMO.read_text())  # and a run says it in one line
    cfg["input"]["paths"] = [str(WARC_DIR / "*.warc.gz")]
    cfg["stages"] = [s if s["stage"] != "langid" else {**s, "model": LID, "model_sha256": wrong}
                     for s in cfg["stages"]]
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_cli("run", str(tmp_path / "wrong.yaml"), "-o", str(tmp_path / "wrong"),
                   "--quiet", check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert (f"stage langid: model {LID} has sha256 {BUNDLED_SHA256}, expected {wrong}"
            in proc.stderr)
    with pytest.raises(UserError) as err:  # a missing object: one line too
        langid(model=f"{MODELS}/nope.bin")
    assert str(err.value) == f"stage langid: model {MODELS}/nope.bin: not found"


def test_the_cache_is_used_and_checked(server, proxy, fresh_cache):
    options = {"s3": {"endpoint_url": proxy.endpoint}}
    with models.model_storage(options):
        first = langid(model=LID, model_sha256=BUNDLED_SHA256)
    assert gets(proxy, "/models/lid.176.ftz") >= 1
    cached = fresh_cache / BUNDLED_SHA256 / "lid.176.ftz"
    assert cached.is_file() and first.model_files() == {LID: BUNDLED_SHA256}
    mtime, requests = cached.stat().st_mtime_ns, len(proxy.log)
    models._VERIFIED.clear()  # as in a new process: the cache is hashed, not fetched again
    with models.model_storage(options):
        second = langid(model=LID, model_sha256=BUNDLED_SHA256)
    assert len(proxy.log) == requests and cached.stat().st_mtime_ns == mtime
    assert second.model_files() == {LID: BUNDLED_SHA256}
    texts = pa.table({"text": ["The cat sat on the mat and looked out of the window.",
                               "Der Hund schläft im Garten unter dem alten Baum."]})
    assert first.check_batch(texts) == second.check_batch(texts)
    # a damaged cache file is not used: it is fetched again
    cached.write_bytes(b"damaged")
    models._VERIFIED.clear()
    with models.model_storage(options):
        langid(model=LID, model_sha256=BUNDLED_SHA256)
    assert len(proxy.log) > requests and sha256(cached.read_bytes()) == BUNDLED_SHA256


def test_url_filter_blocklist_on_s3(server, fresh_cache, tmp_path):
    local = tmp_path / "blocklist.txt"
    local.write_bytes(BLOCKLIST)
    urls = ["https://allenai.org/x", "https://www.allenai.org/", "https://example.com/"]
    table = pa.table({"id": ["0", "1", "2"], "text": ["x"] * 3, "url": urls})

    def reasons(blocklist):
        st = make_spec("url_filter", blocklist_file=blocklist, mode="annotate").build()
        st.setup()
        return st, st.check_batch(table)

    st, got = reasons([f"{MODELS}/blocklist.txt"])
    assert got == reasons(str(local))[1]
    assert got[0] == ["blocked_domain", "blocked_domain", None]
    assert st.model_files() == {f"{MODELS}/blocklist.txt": sha256(BLOCKLIST)}
    with pytest.raises(UserError, match=f"^stage url_filter: cannot read blocklist_file "
                                        f"{MODELS}/missing.txt: not found$"):
        reasons(f"{MODELS}/missing.txt")


def test_c4_bad_words_on_s3(server, fresh_cache, tmp_path):
    from test_filters_heuristics import GOOD_PAGE

    local = tmp_path / "bad_words.txt"
    local.write_bytes(BAD_WORDS)
    texts = {"clean": GOOD_PAGE, "bad": GOOD_PAGE + "Well, darn, that was late.",
             "phrase": GOOD_PAGE + "Heck no, she said to the man."}
    table = pa.table({"id": list(texts), "text": list(texts.values())})

    def reasons(words):
        st = make_spec("c4", bad_words_file=words, mode="annotate").build()
        st.setup()
        st.begin_task(TaskContext(Path("."), "main", 0, "test"))
        return st, st.check_batch(table)[0]

    st, got = reasons(f"{MODELS}/bad_words.txt")
    assert got == reasons(str(local))[1] == [None, "bad_words", "bad_words"]
    assert st.model_files() == {f"{MODELS}/bad_words.txt": sha256(BAD_WORDS)}


def test_count_tokens_tokenizer_on_s3(server, fresh_cache, tmp_path):
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers import models as tok_models

    tok = Tokenizer(tok_models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    texts = ["the cat sat on the mat", "a dog slept in the garden", "the sun was warm"] * 20
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"],
                                                       show_progress=False))
    local = tmp_path / "tokenizer.json"
    tok.save(str(local))
    data = local.read_bytes()
    server.client().put_object(Bucket=BUCKET, Key="models/tokenizer.json", Body=data)
    url = f"{MODELS}/tokenizer.json"

    def counts(path, digest=None):
        st = make_spec("count_tokens", tokenizer=path, tokenizer_sha256=digest).build()
        st.setup()
        return st, st.count(pa.array(["the cat slept", "a warm garden mat"])).to_pylist()

    st, got = counts(url, sha256(data))
    assert got == counts(str(local))[1] == [
        len(tok.encode(t, add_special_tokens=False).ids)
        for t in ["the cat slept", "a warm garden mat"]]
    assert st.model_files() == {url: sha256(data)}
    with pytest.raises(UserError, match=f"^stage count_tokens: tokenizer {url} has sha256 "):
        counts(url, "f" * 64)


def test_datatrove_step_gets_a_local_copy_of_a_file_on_s3(server, fresh_cache):
    server.client().put_object(Bucket=BUCKET, Key="models/words.txt", Body=b"research\n")
    url = f"{MODELS}/words.txt"
    st = make_spec("datatrove", step="test_filters_datatrove_adapter:WordListFilter",
                   args={"words_file": url, "also": [url, "s3://not-a-file/prefix/"]}).build()
    st.setup()
    assert st._step.words == ["research"]  # the step read the downloaded copy
    assert st.model_files() == {url: sha256(b"research\n")}
