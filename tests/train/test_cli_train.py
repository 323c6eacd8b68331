"""`omrgemma train` as a user meets it: help with examples, clear errors, exit codes."""

from __future__ import annotations

from omrgemma.cli import main


def run(args, capsys):
    try:
        main(args)
    except SystemExit as exit:
        code = exit.code
    else:
        code = 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_has_examples(capsys):
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0 and "Examples:" in out and "--resume" in out and "--export" in out


def test_resuming_an_unprepared_folder_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(["train", str(tmp_path / "nothing"), "--resume"], capsys)
    assert code == 2
    assert "not a prepared run folder" in err and "Traceback" not in err


def test_exporting_a_run_without_checkpoint_fails_cleanly(tmp_path, capsys):
    (tmp_path / "run.json").write_text('{"model": {}, "data": {}, "train": {}}')
    code, _, err = run(["train", str(tmp_path), "--export", str(tmp_path / "out")], capsys)
    assert code == 2 and "no checkpoint" in err


def test_max_tokens_below_the_smallest_bucket_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(["train", str(tmp_path / "run"), "--max-tokens", "32"], capsys)
    assert code == 2 and "--max-tokens" in err and not (tmp_path / "run").exists()


def test_text_buckets_end_at_max_tokens():
    from omrgemma.train_run import text_buckets

    assert text_buckets(256) == (64, 128, 256)  # the default stream
    assert text_buckets(384) == (64, 128, 256, 384)
    assert text_buckets(100) == (64, 100)
    assert text_buckets(64) == (64,)


def test_degradation_shares_over_one_are_a_usage_error(tmp_path, capsys):
    code, _, err = run(["train", str(tmp_path / "run"), "--camera", "0.7", "--scan", "0.5"], capsys)
    assert code == 2 and "--camera 0.7 and --scan 0.5" in err and not (tmp_path / "run").exists()


def test_degradation_shares_reach_the_run(tmp_path, capsys, monkeypatch):
    from omrgemma import train_run

    prepared = {}
    monkeypatch.setattr(train_run, "prepare_run", lambda run_dir, **kw: prepared.update(kw))
    args = ["train", str(tmp_path / "run"), "--camera", "0.3", "--scan", "0.2", "--clutter", "0.4"]
    code, _, _ = run([*args, "--prepare-only"], capsys)
    examples = prepared["data"].examples
    assert code == 0
    assert (examples.camera_probability, examples.scan_probability) == (0.3, 0.2)
    assert examples.clutter_probability == 0.4
