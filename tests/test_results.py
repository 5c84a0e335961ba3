"""Result records (`tflm.results`): the command a record carries is the one a user types from the repository
root, with no machine's absolute paths."""

import json
import os
import sys

from tflm import results
from tflm.results import user_command


def test_the_command_is_typed_from_the_repository_root():
    root = "/work/main"
    argv = ["/work/main/.venv/bin/python3.12", "/work/main/recipes/summarization.py", "--data-dir",
            "/work/shared/data", "--run-dir=/work/main/runs/debian-lstm-copy", "--model", "lstm", "--copy",
            "--results-dir", "/tmp/lstm-best-results", "--sentences", "/usr/share/dict/words", "--n", "3"]
    assert user_command(argv, root=root, cwd="/somewhere/else") == (
        "python recipes/summarization.py --data-dir ../shared/data --run-dir=runs/debian-lstm-copy --model lstm "
        "--copy --results-dir $TMPDIR/lstm-best-results --sentences /usr/share/dict/words --n 3")
    # no machine path is left in it (the control: the raw command line has them)
    assert "/work/" not in user_command(argv, root=root) and "/work/" in " ".join(argv)


def test_relative_paths_are_rebased_on_the_root_and_other_words_kept(tmp_path):
    root = tmp_path / "repo"
    (root / "recipes").mkdir(parents=True)
    (root / "recipes" / "translation.py").write_text("")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    # run from recipes/: its relative paths become the root's; names that are no file here stay as they are
    argv = ["python", "translation.py", "--data-dir", "../../shared/data", "--dataset", "tatoeba-es-en",
            "--name", "a b", "-m", "x.y"]
    assert user_command(argv, root=str(root), cwd=str(root / "recipes")) == (
        "python recipes/translation.py --data-dir ../shared/data --dataset tatoeba-es-en --name 'a b' -m x.y")
    # from the root, it is what was typed
    assert user_command(["python", "recipes/translation.py", "--run-dir", "runs/new"], root=str(root),
                        cwd=str(root)) == "python recipes/translation.py --run-dir runs/new"


def test_write_record_writes_this_process_s_command_from_the_root(tmp_path, monkeypatch):
    root = results.repository_root()
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, os.path.join(root, "recipes", "translation.py"),
                                           "--run-dir", os.path.join(root, "runs", "x")])
    monkeypatch.setattr(results, "machine", lambda: "test machine")
    path = results.write_record("a test/record", "translation", "sample", "tiny", {"bleu": 1.0},
                                directory=str(tmp_path))
    record = json.load(open(path))
    assert os.path.basename(path) == "a-test-record.json"
    assert record["command"] == "python recipes/translation.py --run-dir runs/x"


def test_the_committed_records_carry_no_absolute_path():
    import glob
    import shlex

    paths = glob.glob(os.path.join(os.path.dirname(__file__), "..", "docs", "results", "*.json"))
    assert paths
    for path in paths:
        command = json.load(open(path, encoding="utf-8"))["command"]
        words = [word.partition("=")[2] if word.startswith("-") else word for word in shlex.split(command)]
        assert words[0] == "python" and not [w for w in words if w.startswith("/")], (path, command)
