"""Google Magenta's sketch-rnn models for the web (``.gen.json``), in and out.

Magenta published decoder-only ("unconditional") sketch-rnn models, trained on
the full Quick, Draw! data, for its JavaScript library ``@magenta/sketch``
(sketch-rnn-js). `load_magenta` reads one into this project's own `SketchRNN`
(unconditional, LSTM decoder, N_max and the scale factor from the file), and
`export_gen_json` writes a model trained here in the same format, so that the
JS draws with it. `read_gen_json` gives the file as a checkpoint dict, which is
how `models.checkpoint.read_checkpoint` (and so every command that takes a
checkpoint) takes a ``.gen.json`` too.

The format (see ``../shared/magenta/README.md``): a JSON array ``[info, dims,
weights]``. ``info`` holds ``max_seq_len`` (N_max), ``scale_factor`` (the
training offsets' standard deviation: the model sees offsets divided by it),
``name``, ``mode`` and ``version``. ``dims`` gives the shapes of five arrays, in
this order: the output kernel ``[H, 3 + 6M]``, its bias, the LSTM input kernel
``[5, 4H]``, the recurrent kernel ``[H, 4H]`` and the LSTM bias ``[4H]``. Each
entry of ``weights`` is base64 of the little-endian int16 values of one array,
row-major; a value is ``int16 * 10 / 32767``.

What the JS computes with them, and so what this module maps onto torch:

- TensorFlow's basic LSTM cell: ``[x, h] @ [[W_x], [W_h]] + b`` split into the
  gates i, j (the candidate), f, o, with a forget bias of 1.0 added to f before
  its sigmoid. Torch's LSTM orders its gates i, f, g, o and has two biases:
  ``bias_ih`` gets ``b`` reordered with 1.0 added to f, ``bias_hh`` is zero.
- The output ``h @ kernel + bias`` splits as the 3 pen logits first, then π,
  μx, μy, log σx, log σy and the correlation before tanh, M each; this
  project's output layer puts the pen logits last (`sketch_rnn.MixtureParams`).
- Input offsets are divided by the scale factor (the JS divides "pixels" by
  ``scale_factor / pixel_factor``, pixel factor 2 by default).

Reading is the only parser here: JSON by the standard library's parser (with
NaN and Infinity refused), base64 by the standard library, every size checked
against ``dims`` before an array is built, and nothing evaluated.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import QuickDrawError
from .checkpoint import CHECKPOINT_FORMAT

SUFFIX = ".gen.json"
MAX_BYTES = 64 * 2**20  # a published model is 3 MB; no real one comes near this
MAX_UNITS = 4096  # the LSTM size a file may declare (Magenta's are 512)
MAX_SEQ_LEN = 10_000  # N_max a file may declare (Magenta's are 110-182)
WEIGHT_RANGE = 10.0  # int16 * 10 / 32767: the format holds weights in [-10, 10]
NUM_MIXTURE = 20  # M: @magenta/sketch reads exactly 20 Gaussians (its NMIXTURE)
INFO_MODE, INFO_VERSION = 2, 6  # what every published decoder-only model's info says
ARRAYS = ("output kernel", "output bias", "LSTM input kernel", "LSTM recurrent kernel", "LSTM bias")


def is_gen_json(path: str | os.PathLike) -> bool:
    """Whether the file's name says it is a Magenta ``.gen.json`` model."""
    return Path(path).name.lower().endswith(SUFFIX)


# --- reading ------------------------------------------------------------------


def _refuse_constant(name: str):
    raise ValueError(f"it holds {name}, which is not a JSON number")


def _parse(path: Path) -> list:
    """The file's JSON value, refusing oversized files, truncation, NaN and Infinity."""
    if not path.is_file():
        raise QuickDrawError(f"Magenta model {str(path)!r} not found")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise QuickDrawError(
            f"{path}: {size:,} bytes is larger than any sketch-rnn model "
            f"(limit {MAX_BYTES // 2**20} MB); refusing to read it"
        )
    with open(path, "rb") as f:
        raw = f.read(MAX_BYTES + 1)  # the file may have grown since stat
    if len(raw) > MAX_BYTES:
        raise QuickDrawError(f"{path}: larger than {MAX_BYTES // 2**20} MB; refusing to read it")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as e:
        raise QuickDrawError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        ends_early = e.pos >= len(raw.rstrip()) or e.msg.startswith("Unterminated")
        why = f"truncated: {e.msg}" if ends_early else e.msg
        raise QuickDrawError(f"{path}: not a complete JSON file ({why} at {where})") from None
    except ValueError as e:  # NaN / Infinity, from _refuse_constant
        raise QuickDrawError(f"{path}: {e}; a .gen.json's numbers are finite") from None
    except RecursionError:
        raise QuickDrawError(f"{path}: JSON nested too deeply for a .gen.json") from None


def _short(value) -> str:
    """`repr` of a value a file gave, cut short for a one-line message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_info(info, path: Path) -> dict:
    if not isinstance(info, dict):
        raise QuickDrawError(f"{path}: its first element (info) is not an object")
    for key in ("max_seq_len", "scale_factor"):
        if key not in info:
            raise QuickDrawError(f"{path}: info has no {key!r}; a .gen.json needs it")
    n_max, scale = info["max_seq_len"], info["scale_factor"]
    if isinstance(n_max, bool) or not isinstance(n_max, int) or not 1 <= n_max <= MAX_SEQ_LEN:
        raise QuickDrawError(
            f"{path}: max_seq_len must be an integer in 1..{MAX_SEQ_LEN}, got {_short(n_max)}"
        )
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise QuickDrawError(f"{path}: scale_factor must be a number, got {_short(scale)}")
    if not (math.isfinite(scale) and scale > 0):
        raise QuickDrawError(f"{path}: scale_factor must be finite and > 0, got {scale!r}")
    name = info.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise QuickDrawError(f"{path}: info's name must be a short string")
    return info


def _expected_dims(dims, path: Path) -> tuple[int, int]:
    """(H, M) from ``dims``, checked against the five shapes the format has."""
    if (
        not isinstance(dims, list)
        or len(dims) != len(ARRAYS)
        or not all(
            isinstance(d, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in d)
            for d in dims
        )
    ):
        raise QuickDrawError(f"{path}: dims must be {len(ARRAYS)} lists of integers")
    if len(dims[0]) != 2:
        raise QuickDrawError(f"{path}: dims[0] (the output kernel) must be [H, 3 + 6M]")
    units, out = dims[0]
    if not 1 <= units <= MAX_UNITS:
        raise QuickDrawError(f"{path}: dims say {units} LSTM units; expected 1..{MAX_UNITS}")
    if out < 9 or (out - 3) % 6:
        raise QuickDrawError(f"{path}: dims say {out} outputs; expected 3 + 6M (123 for M = 20)")
    want = [[units, out], [out], [5, 4 * units], [units, 4 * units], [4 * units]]
    for name, got, shape in zip(ARRAYS, dims, want, strict=True):
        if got != shape:
            raise QuickDrawError(
                f"{path}: dims give the {name} shape {got}; a decoder-only sketch-rnn with "
                f"{units} units and {out} outputs has {shape}"
            )
    return units, (out - 3) // 6


def _decode(text, shape: list[int], name: str, index: int, path: Path) -> np.ndarray:
    """One base64 int16 array, its length checked against `shape` before decoding."""
    if not isinstance(text, str):
        raise QuickDrawError(f"{path}: weights[{index}] ({name}) is not a base64 string")
    count = math.prod(shape)
    want = 4 * math.ceil(2 * count / 3)  # base64 length of `count` int16 values
    if len(text) != want:
        raise QuickDrawError(
            f"{path}: weights[{index}] ({name}) holds {len(text)} base64 characters; dims "
            f"{shape} need {want} ({count} int16 values)"
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise QuickDrawError(
            f"{path}: weights[{index}] ({name}) is not valid base64 ({e})"
        ) from None
    if len(data) != 2 * count:
        raise QuickDrawError(
            f"{path}: weights[{index}] ({name}) decodes to {len(data)} bytes; dims {shape} "
            f"need {2 * count}"
        )
    values = np.frombuffer(data, dtype="<i2").astype(np.float32) * np.float32(WEIGHT_RANGE / 32767)
    return values.reshape(shape)


def _category(name: str, path: Path) -> str:
    """The Quick, Draw! category a model's name means ("palm_tree" -> "palm tree")."""
    from ..categories import check_category

    for guess in (name, path.name[: -len(SUFFIX)]):
        try:
            return check_category(guess)
        except QuickDrawError:
            continue
    return name or path.name[: -len(SUFFIX)]


def _state_dict(arrays: list[np.ndarray], m: int) -> dict[str, torch.Tensor]:
    """The five TF arrays -> this project's unconditional LSTM `SketchRNN` weights."""
    out_kernel, out_bias, w_x, w_h, bias = (torch.from_numpy(a.copy()) for a in arrays)
    # output: pen logits first in the file, last here
    order = torch.cat([torch.arange(3, 3 + 6 * m), torch.arange(3)])
    bias = _swap_gates(bias)
    bias[len(bias) // 4 : len(bias) // 2] += 1.0  # TF's forget bias, on f (torch's 2nd gate)
    return {
        "decoder.lstm.weight_ih_l0": _swap_gates(w_x.T),
        "decoder.lstm.weight_hh_l0": _swap_gates(w_h.T),
        "decoder.lstm.bias_ih_l0": bias,
        "decoder.lstm.bias_hh_l0": torch.zeros_like(bias),
        "to_params.weight": out_kernel.T[order].contiguous(),
        "to_params.bias": out_bias[order].contiguous(),
    }


def _swap_gates(w: torch.Tensor) -> torch.Tensor:
    """Gate blocks along dim 0 between TF's order (i, j = the candidate, f, o) and torch's
    (i, f, g, o): the middle two change places, so the one swap goes either way."""
    i, second, third, o = w.chunk(4, 0)
    return torch.cat([i, third, second, o]).contiguous()


def read_gen_json(path: str | os.PathLike) -> dict:
    """A ``.gen.json`` as the checkpoint dict `models.checkpoint.read_checkpoint` returns:
    an unconditional LSTM sketch-rnn at step 0, its N_max and scale factor from the file,
    no optimiser. One-line `QuickDrawError` for a file that is not a well-formed model."""
    from .sketch_rnn import SketchRNNConfig

    path = Path(path)
    value = _parse(path)
    if not isinstance(value, list) or len(value) != 3:
        raise QuickDrawError(f"{path}: a .gen.json is a JSON array [info, dims, weights]")
    info, dims, weights = value
    info = _check_info(info, path)
    units, m = _expected_dims(dims, path)
    if not isinstance(weights, list) or len(weights) != len(ARRAYS):
        raise QuickDrawError(f"{path}: weights must be a list of {len(ARRAYS)} base64 strings")
    arrays = [
        _decode(text, shape, name, k, path)
        for k, (text, shape, name) in enumerate(zip(weights, dims, ARRAYS, strict=True))
    ]
    config = SketchRNNConfig(
        max_seq_len=info["max_seq_len"],
        dec_size=units,
        decoder="lstm",
        num_mixture=m,
        conditional=False,
    )
    name = info.get("name", "")
    return {
        "format_version": CHECKPOINT_FORMAT,
        "model": "sketch-rnn",
        "model_config": asdict(config),
        "weights": _state_dict(arrays, m),
        "data_state": {
            "scale_factor": float(info["scale_factor"]),
            "categories": [_category(name, path)],
            "magenta": {"file": str(path.resolve()), "name": name},
        },
        "train_config": {},
        "step": 0,
    }


def load_magenta(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """Load a Magenta ``.gen.json`` as this project's `SketchRNN`: ``(model, data_state)``.

    The model is unconditional with an LSTM decoder of the file's size, in eval mode on
    `device`; ``data_state["scale_factor"]`` is the file's (offsets are divided by it, and
    samples come back multiplied by it), ``data_state["categories"]`` its category::

        model, state = load_magenta("../shared/magenta/sheep.gen.json")
        sketches = model.sample(16, temperature=0.5, scale=state["scale_factor"])
    """
    from .checkpoint import load_checkpoint

    if not is_gen_json(path):
        raise QuickDrawError(f"{path}: a Magenta model's name ends in {SUFFIX}")
    model, data_state, _ = load_checkpoint(path, device)  # read_checkpoint reads .gen.json
    return model, data_state


@torch.no_grad()
def step_distributions(model, sketch: np.ndarray, scale: float) -> np.ndarray:
    """What @magenta/sketch's ``getPDF(state, 1.0)`` gives after each input, teacher-forced
    through the start token and the n points of a stroke-3 `sketch` (in data units):
    ``(n + 1, 6M + 3)`` float32, each row π (softmax), μx, μy, σx, σy, ρ, then the pen
    probabilities (softmax), in the JS's order. The exactness test compares the two."""
    from .sketch_rnn import MixtureParams

    strokes5, _ = model._prepare([sketch], scale)
    p: MixtureParams = model.decode(strokes5[:, : len(sketch) + 1], None)[0]
    rows = [
        torch.softmax(p.logit_pi, -1),
        p.mu_x,
        p.mu_y,
        p.sigma_x,
        p.sigma_y,
        p.rho,
        torch.softmax(p.pen_logits, -1),
    ]
    return torch.cat(rows, -1)[0].cpu().numpy().astype(np.float32)


# --- writing ------------------------------------------------------------------


def _refuse(model, source: str) -> None:
    """One line saying why the format cannot hold this model, if it cannot."""
    cfg = getattr(model, "config", None)
    why = None
    if getattr(model, "name", None) != "sketch-rnn":
        why = f"it is a {getattr(model, 'name', '?')} model; the format holds sketch-rnn only"
    elif cfg.conditional:
        why = (
            "it is a conditional (encoder-decoder) model; the format holds the decoder of an "
            "unconditional model only (train with --no-conditional)"
        )
    elif cfg.decoder != "lstm":
        why = (
            f"its decoder is {cfg.decoder!r}; @magenta/sketch runs TensorFlow's basic LSTM cell "
            "only (train with --decoder lstm)"
        )
    elif cfg.num_mixture != NUM_MIXTURE:
        why = (
            f"it has M = {cfg.num_mixture} mixture components; @magenta/sketch reads exactly "
            f"{NUM_MIXTURE} (train with --num-mixture {NUM_MIXTURE})"
        )
    if why:
        raise QuickDrawError(f"cannot export {source} as {SUFFIX}: {why}")


def _quantize(array: torch.Tensor, name: str, source: str) -> str:
    """float weights -> base64 of little-endian int16 ``round(w * 32767 / 10)``."""
    values = array.detach().cpu().double().numpy()
    if not np.isfinite(values).all():
        raise QuickDrawError(f"cannot export {source}: its {name} holds NaN or infinite weights")
    peak = float(np.abs(values).max(initial=0.0))
    if peak > WEIGHT_RANGE:
        raise QuickDrawError(
            f"cannot export {source} as {SUFFIX}: its {name} has a weight of magnitude "
            f"{peak:.4g}; the format's int16 holds [-{WEIGHT_RANGE:g}, {WEIGHT_RANGE:g}]"
        )
    q = np.round(values * (32767 / WEIGHT_RANGE)).astype("<i2")
    return base64.b64encode(np.ascontiguousarray(q).tobytes()).decode("ascii")


def gen_json_value(model, data_state: dict, source: str = "the model") -> list:
    """``[info, dims, weights]`` for an unconditional LSTM `SketchRNN` (see the module doc);
    `QuickDrawError` naming what the format cannot hold otherwise."""
    _refuse(model, source)
    cfg, m = model.config, model.config.num_mixture
    weights = {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    lstm = "decoder.lstm."
    bias = weights[lstm + "bias_ih_l0"] + weights[lstm + "bias_hh_l0"]
    bias[len(bias) // 4 : len(bias) // 2] -= 1.0  # TF adds its forget bias 1.0 itself
    order = torch.cat([torch.arange(6 * m, 6 * m + 3), torch.arange(6 * m)])  # pen first
    arrays = [
        weights["to_params.weight"][order].T,
        weights["to_params.bias"][order],
        _swap_gates(weights[lstm + "weight_ih_l0"]).T,
        _swap_gates(weights[lstm + "weight_hh_l0"]).T,
        _swap_gates(bias),
    ]
    scale = float(data_state.get("scale_factor", 0.0))
    if not (math.isfinite(scale) and scale > 0):
        raise QuickDrawError(f"cannot export {source}: its scale factor {scale!r} is not > 0")
    names = data_state.get("categories") or []
    name = str(names[0]) if len(names) == 1 else "sketch"
    info = {
        "mode": INFO_MODE,
        "version": INFO_VERSION,
        "max_seq_len": int(cfg.max_seq_len),
        "name": name.replace(" ", "_"),
        "scale_factor": scale,
    }
    dims = [list(a.shape) for a in arrays]
    return [info, dims, [_quantize(a, n, source) for a, n in zip(arrays, ARRAYS, strict=True)]]


def export_gen_json(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write the model of `checkpoint` (a ``.pt`` from `quickdraw train`, or a ``.gen.json``)
    to `out` as a Magenta ``.gen.json``, atomically; returns the file's info. Refuses in one
    line what the format cannot hold (a conditional model, a layer-norm or HyperLSTM decoder,
    M other than 20, weights beyond ±10)."""
    from .checkpoint import load_checkpoint

    out = Path(out)
    if not is_gen_json(out):
        raise QuickDrawError(f"--out {out.name!r}: a Magenta model's name ends in {SUFFIX}")
    model, data_state, _ = load_checkpoint(checkpoint, "cpu")
    value = gen_json_value(model, data_state, str(checkpoint))
    with atomic_write(out, "w", encoding="utf-8") as f:
        json.dump(value, f, separators=(",", ":"))
    return value[0]
