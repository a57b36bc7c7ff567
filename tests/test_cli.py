"""The `quickdraw` command as a whole: every flag explained, the same flag meaning the same."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from quickdraw_tools import __version__
from quickdraw_tools.cli import build_parser, main
from quickdraw_tools.commands import train as train_command


def all_parsers():
    """(name, parser) of every command and subcommand, and of `train MODEL`'s own parsers."""
    from quickdraw_tools.models.base import MODELS, model_class

    out = []

    def walk(name, parser):
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(f"{name} {sub}", child)

    walk("quickdraw", build_parser())
    assert set(MODELS) == set(train_command.MODELS)
    for model in MODELS:
        out.append((f"quickdraw train {model}", train_command.model_parser(model_class(model))))
    return out


def test_every_flag_has_help_and_enumerations_have_choices():
    enumerated = {"--mode", "--split", "--method", "--device", "--format", "--caption"}
    enumerated |= {"--color-by", "--on-error", "--source-format", "--decoder", "--binarize"}
    enumerated |= {"--optimizer"}
    seen = set()
    for name, parser in all_parsers():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), f"{name} {action.option_strings}"
            for flag in action.option_strings:
                seen.add(flag)
                # model and training fields are checked by their dataclasses (one message)
                if flag in enumerated and not name.startswith("quickdraw train "):
                    assert action.choices, f"{name} {flag} has no choices"
    assert {"--json", "--json-out", "--quiet", "--device", "--threads", "--workers"} <= seen


def test_same_flag_same_meaning():
    """--json prints JSON, --device defaults to auto, --quiet and --png are switches."""
    for name, parser in all_parsers():
        for action in parser._actions:
            flags = set(action.option_strings)
            if flags & {"--json", "--quiet", "--png"}:
                assert action.nargs == 0, f"{name} {flags}: a switch"
            if "--json" in flags:
                assert "JSON" in action.help, name
            if "--device" in flags:
                assert action.default in ("auto", argparse.SUPPRESS), name
            if "--workers" in flags:
                assert "process" in action.help, f"{name}: --workers means processes"
            if "--threads" in flags:
                assert "thread" in action.help, name


@pytest.mark.parametrize(
    "model,expected",
    [
        ("draw", {"--lr-decay": "1.0", "--grad-clip": "5.0", "--optimizer": "rmsprop"}),
        ("sketch-rnn", {"--lr-decay": "0.9999", "--grad-clip": "1.0", "--decoder": "lstm"}),
    ],
)
def test_train_help_shows_the_defaults_that_are_used(model, expected, capsys):
    from quickdraw_tools.models.base import model_class

    with pytest.raises(SystemExit):
        main(["train", model, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "examples:" in text and f"quickdraw train {model} --data" in text
    parser = train_command.model_parser(model_class(model))
    for flag, default in expected.items():
        (action,) = [a for a in parser._actions if flag in a.option_strings]
        assert f"(default: {default})" in action.help, (flag, action.help)
    # and they are the values a run gets
    cls = model_class(model)
    settings = cls.settings_class()
    assert str(settings.lr_decay) == expected["--lr-decay"]
    assert str(settings.grad_clip) == expected["--grad-clip"]


def test_version_and_a_closed_pipe():
    assert main.__module__ == "quickdraw_tools.cli"
    done = subprocess.run(
        [sys.executable, "-m", "quickdraw_tools.cli", "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == f"quickdraw {__version__}"
    # the reader of the pipe leaves at once: no "Broken pipe" error, no traceback
    listing = subprocess.run(
        f"{sys.executable} -m quickdraw_tools.cli download --list | head -n 1",
        shell=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.stdout == "aircraft carrier\n" and listing.stderr == ""
    closed = subprocess.Popen(
        [sys.executable, "-m", "quickdraw_tools.cli", "download", "--list"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    closed.stdout.close()  # closed before it writes a line
    _, err = closed.communicate(timeout=60)
    assert err == b"" and closed.returncode in (0, 141)
