"""The small things a new user met (issue 22, items 6 and 8): defaults in every --help, the
judge chart's titles inside the picture, Parquet in the top-level help, svg --help naming the
files svg writes, "1 is", a misspelt --word answered with the category meant."""

from __future__ import annotations

import argparse
import re
import uuid

from quickdraw_tools.cli import build_parser, main
from quickdraw_tools.commands import train as train_command
from quickdraw_tools.models.base import model_class


def every_option(parser: argparse.ArgumentParser, name: str = "quickdraw"):
    """(command, action) for every option of every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from every_option(subparser, f"{name} {sub}")
        elif action.option_strings and not isinstance(
            action, argparse._HelpAction | argparse._VersionAction
        ):
            yield name, action


def test_every_flag_with_a_default_shows_it_in_its_help():
    parsers = [build_parser()]
    for model in train_command.MODELS:  # `quickdraw train MODEL --help`'s own flags
        parsers.append(train_command.model_parser(model_class(model)))
    missing = []
    for parser in parsers:
        for command, action in every_option(parser, parser.prog):
            if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
                continue  # a switch: off unless given
            if action.default is None or action.default == []:
                continue  # nothing unless given (the help says what it does then)
            # the rest have a value, or are `train MODEL`'s config flags (SUPPRESS: the value
            # a run gets is the config's, shown in the help)
            if "default" not in (action.help or "").lower():
                missing.append(f"{command} {action.option_strings[-1]}")
    assert not missing, missing


def test_the_judge_chart_titles_fit_in_a_narrow_chart(shared, tmp_path):
    import matplotlib.pyplot as plt

    from quickdraw_tools.eval.grading.report import build_report, chart_figure
    from quickdraw_tools.eval.grading.sources import build_session, parse_source
    from quickdraw_tools.eval.grading.store import GradeStore
    from quickdraw_tools.eval.judge import JudgeConfig, JudgeTraining, train_judge

    training = shared / "training"
    judge = tmp_path / "judge.pt"
    files = [training / f"{c}.ndjson" for c in ("cake", "teapot")]
    train_judge(files, judge, JudgeConfig(channels=8, feature_size=16),
                JudgeTraining(epochs=1, max_per_category=200), device="cpu",
                progress=False)  # fmt: skip
    real, model = parse_source(str(files[0])), parse_source(str(files[1]))
    session = build_session(real, [model], 4, seed=0, examples=0)  # one source: a narrow chart
    with GradeStore(tmp_path / "g.sqlite") as store:
        store.create_session(session.pool, session.spec, session.examples)
        for name in ("a", "b"):
            rater = store.new_rater(name)
            for k, sid in enumerate(rater.order):
                store.add_grade(
                    uuid.uuid4().hex, rater, sid, ("real", "fake", "possibly_real")[k % 3]
                )
        fig = chart_figure(build_report(store, resamples=50, judge=judge))
    fig.canvas.draw()
    page = fig.bbox
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 and "AUC" in titles[1].get_text()
    for title in titles:
        box = title.get_window_extent()
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, title.get_text()
    plt.close(fig)


def test_the_top_level_help_names_every_format(capsys):
    parser = build_parser()
    text = parser.format_help()
    for word in ("sketch-rnn .npz", "bitmaps", "MNIST", "Parquet"):
        assert word in text, word


def test_svg_help_names_the_files_svg_writes(shared, tmp_path, capsys):
    source = shared / "mirror" / "full" / "simplified" / "cat.ndjson"
    assert main(["convert", str(source), "--out", str(tmp_path / "data"), "--quiet"]) == 0
    npz = tmp_path / "data" / "sketchrnn" / "cat.npz"
    assert main(["svg", str(npz), "--split", "test", "--out", str(tmp_path / "one")]) == 0
    assert main(["svg", str(source), "--limit", "2", "--out", str(tmp_path / "two")]) == 0
    assert main(["svg", str(npz), "--grid", "2x2", "--out", str(tmp_path / "grid")]) == 0
    written = {p.name for d in ("one", "two", "grid") for p in (tmp_path / d).glob("*.svg")}
    help_text = build_parser()._subparsers._group_actions[0].choices["svg"].format_help()
    named = set(re.findall(r"cat_\w+\.svg", help_text))
    assert named == {"cat_00000.svg", "cat_test_00000.svg", "cat_grid_000.svg"}
    assert named <= written


def test_one_is_one(shared, tmp_path, capsys):
    """A source with one drawing the judge trained on says "1 is a drawing", not "1 are"."""
    from quickdraw_tools.eval.judge import (
        JudgeConfig,
        JudgeTraining,
        read_labelled,
        train_judge,
    )
    from quickdraw_tools.formats import write_ndjson

    files = [shared / "training" / f"{c}.ndjson" for c in ("cake", "teapot")]
    judge = tmp_path / "judge.pt"
    training = JudgeTraining(epochs=1, max_per_category=400)
    train_judge(files, judge, JudgeConfig(channels=8, feature_size=16), training,
                device="cpu", progress=False)  # fmt: skip
    cakes = read_labelled(files[:1], max_per_category=400)["cake"].drawings
    mixed = tmp_path / "cakes.ndjson"
    rows = [cakes["train"][0], *cakes["test"][:9]]
    write_ndjson(mixed, [{"word": "cake", "drawing": d} for d in rows])
    assert main(["judge", "score", str(judge), str(mixed), "--n", "10", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "of these 10 sketches, 1 is a drawing the judge trained on and 0 are in its " in out


def test_a_misspelt_word_is_answered_with_the_category_meant(shared, tmp_path, capsys):
    svg = tmp_path / "cat.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
                   '<path d="M10 10 L90 90 L10 90"/></svg>')  # fmt: skip
    out = tmp_path / "mine.ndjson"
    assert main(["import-svg", str(svg), "--word", "catt", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "'catt' is not one of the Quick, Draw! categories (did you mean 'cat'" in err
    assert main(["import-svg", str(svg), "--word", "cat", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
