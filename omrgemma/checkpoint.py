"""Load and save PaliGemma 2 weights: transformers safetensors, big_vision `.npz`, our model dir.

Every foreign format is described by one declarative name map: a table of `Rule`s (our
big_vision name, their name with `{i}` for the layer index, an index into our stacked tensor,
and a `Tf` layout transform). Loading expands the table for a config, checks every name and
shape on both sides against `abstract_params(config)` (reporting every problem at once in a
`CheckpointError`), then reads tensors one at a time, transforms and places them. Nothing is
unpickled: safetensors, `np.load(allow_pickle=False)` and JSON only.

Layouts recognised by `load_any(path)`:
- ours: a directory with `config.json` (format "omrgemma.paligemma/1"), `model.safetensors`
  (flat big_vision names), `tokenizer.model`, `README.md`;
- transformers: a directory with a PaliGemma `config.json` and `model.safetensors` or
  `model-0000N-of-0000M.safetensors` + `model.safetensors.index.json`, names either legacy
  (`language_model.model.*`, as on the hub) or >= 4.52 (`model.language_model.*`);
- big_vision: a `.npz` file (keys optionally under `params/`, bf16 stored as `|V2`).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from omrgemma.config import CONFIG_FORMAT, PRESETS, PaliGemmaConfig, TextConfig, VisionConfig
from omrgemma.config import from_hf_config as config_from_hf
from omrgemma.errors import CheckpointError, ModelError
from omrgemma.io import check_writable, file_mode, write_atomic
from omrgemma.nn.layers import Params, flatten_dict, unflatten_dict
from omrgemma.nn.paligemma import abstract_params
from omrgemma.nn.vit import resample_posemb

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HF_INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILE = "tokenizer.model"
CARD_FILE = "README.md"


# ---- the declarative name maps ---------------------------------------------------------------


@dataclass(frozen=True)
class Tf:
    """How their tensor is laid out relative to (a slice of) ours.

    theirs = ours.transpose(perm).reshape(...) where `merge` says how many consecutive
    transposed axes form each of their axes. `rows`: their first axis may be longer (padded
    vocabulary); the extra rows are dropped. `posemb`: a position table that may be resampled,
    from a square grid (the only kind a foreign checkpoint holds) to ours, `grid` (rows, columns).
    A table with as many rows as ours is taken as it is.
    """

    perm: tuple[int, ...] | None = None
    merge: tuple[int, ...] | None = None
    rows: bool = False
    posemb: bool = False
    grid: tuple[int, int] | None = None

    def _permuted(self, ours: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(ours[i] for i in self.perm) if self.perm else tuple(ours)

    def their_shape(self, ours: tuple[int, ...]) -> tuple[int, ...]:
        shape = self._permuted(ours)
        if not self.merge:
            return shape
        out, at = [], 0
        for n in self.merge:
            out.append(int(np.prod(shape[at : at + n])))
            at += n
        return tuple(out)

    def shape_ok(self, theirs: tuple[int, ...], ours: tuple[int, ...]) -> bool:
        want = self.their_shape(ours)
        if self.rows:
            return len(theirs) == len(want) and theirs[0] >= want[0] and theirs[1:] == want[1:]
        if self.posemb:
            return len(theirs) == len(want) and theirs[-1] == want[-1] and theirs[0] == want[0]
        return tuple(theirs) == want

    def to_ours(self, x: np.ndarray, ours: tuple[int, ...]) -> np.ndarray:
        if self.rows:
            x = x[: ours[0]]
        if self.posemb and x.shape[1] != ours[1]:
            x = resample_posemb(x, self.grid or ours[1])
        x = x.reshape(self._permuted(ours))
        return x.transpose(np.argsort(self.perm)) if self.perm else x

    def to_theirs(self, x: np.ndarray) -> np.ndarray:
        y = x.transpose(self.perm) if self.perm else x
        return y.reshape(self.their_shape(x.shape))


SAME = Tf()
T2 = Tf(perm=(1, 0))  # torch Linear.weight is [out, in]


@dataclass(frozen=True)
class Rule:
    """our name <- their name ("{i}" = layer index, expanded over the stacked axis), and the
    index `sub` into our tensor after the layer axis (kv_einsum: 0 = k, 1 = v)."""

    ours: str
    theirs: str
    tf: Tf = SAME
    sub: tuple[int, ...] = ()


@dataclass(frozen=True)
class Placement:
    """One foreign tensor and where it goes: `ours[index] = tf.to_ours(theirs)`."""

    ours: str
    index: tuple[int, ...]
    theirs: str
    tf: Tf


_V = "model.vision_tower.vision_model"
_E = "img/Transformer/encoderblock"
_A = f"{_E}/MultiHeadDotProductAttention_0"
_L = "model.language_model"
_Q = Tf(perm=(0, 2, 1), merge=(2, 1))  # (N, D, H) -> (N*H, D)

HF_RULES: tuple[Rule, ...] = (
    Rule("img/embedding/kernel", f"{_V}.embeddings.patch_embedding.weight", Tf(perm=(3, 2, 0, 1))),
    Rule("img/embedding/bias", f"{_V}.embeddings.patch_embedding.bias"),
    Rule("img/pos_embedding", f"{_V}.embeddings.position_embedding.weight", Tf(merge=(2, 1))),
    Rule(f"{_E}/LayerNorm_0/scale", f"{_V}.encoder.layers.{{i}}.layer_norm1.weight"),
    Rule(f"{_E}/LayerNorm_0/bias", f"{_V}.encoder.layers.{{i}}.layer_norm1.bias"),
    Rule(f"{_E}/LayerNorm_1/scale", f"{_V}.encoder.layers.{{i}}.layer_norm2.weight"),
    Rule(f"{_E}/LayerNorm_1/bias", f"{_V}.encoder.layers.{{i}}.layer_norm2.bias"),
    *(
        rule
        for ours, theirs in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"))
        for rule in (
            # (W, N, H) -> (N*H, W) and (N, H) -> (N*H,)
            Rule(
                f"{_A}/{ours}/kernel",
                f"{_V}.encoder.layers.{{i}}.self_attn.{theirs}.weight",
                Tf(perm=(1, 2, 0), merge=(2, 1)),
            ),
            Rule(
                f"{_A}/{ours}/bias",
                f"{_V}.encoder.layers.{{i}}.self_attn.{theirs}.bias",
                Tf(merge=(2,)),
            ),
        )
    ),  # fmt: skip
    Rule(
        f"{_A}/out/kernel",
        f"{_V}.encoder.layers.{{i}}.self_attn.out_proj.weight",
        Tf(perm=(2, 0, 1), merge=(1, 2)),
    ),  # (N, H, W) -> (W, N*H)  # fmt: skip
    Rule(f"{_A}/out/bias", f"{_V}.encoder.layers.{{i}}.self_attn.out_proj.bias"),
    Rule(f"{_E}/MlpBlock_0/Dense_0/kernel", f"{_V}.encoder.layers.{{i}}.mlp.fc1.weight", T2),
    Rule(f"{_E}/MlpBlock_0/Dense_0/bias", f"{_V}.encoder.layers.{{i}}.mlp.fc1.bias"),
    Rule(f"{_E}/MlpBlock_0/Dense_1/kernel", f"{_V}.encoder.layers.{{i}}.mlp.fc2.weight", T2),
    Rule(f"{_E}/MlpBlock_0/Dense_1/bias", f"{_V}.encoder.layers.{{i}}.mlp.fc2.bias"),
    Rule("img/Transformer/encoder_norm/scale", f"{_V}.post_layernorm.weight"),
    Rule("img/Transformer/encoder_norm/bias", f"{_V}.post_layernorm.bias"),
    Rule("img/head/kernel", "model.multi_modal_projector.linear.weight", T2),
    Rule("img/head/bias", "model.multi_modal_projector.linear.bias"),
    Rule("llm/embedder/input_embedding", f"{_L}.embed_tokens.weight", Tf(rows=True)),
    Rule("llm/layers/attn/q_einsum/w", f"{_L}.layers.{{i}}.self_attn.q_proj.weight", _Q),
    Rule("llm/layers/attn/kv_einsum/w", f"{_L}.layers.{{i}}.self_attn.k_proj.weight", _Q, (0,)),
    Rule("llm/layers/attn/kv_einsum/w", f"{_L}.layers.{{i}}.self_attn.v_proj.weight", _Q, (1,)),
    Rule(
        "llm/layers/attn/attn_vec_einsum/w",
        f"{_L}.layers.{{i}}.self_attn.o_proj.weight",
        Tf(perm=(2, 0, 1), merge=(1, 2)),
    ),  # (N, H, D) -> (D, N*H)  # fmt: skip
    Rule("llm/layers/mlp/gating_einsum", f"{_L}.layers.{{i}}.mlp.gate_proj.weight", T2, (0,)),
    Rule("llm/layers/mlp/gating_einsum", f"{_L}.layers.{{i}}.mlp.up_proj.weight", T2, (1,)),
    Rule("llm/layers/mlp/linear", f"{_L}.layers.{{i}}.mlp.down_proj.weight", T2),
    Rule("llm/layers/pre_attention_norm/scale", f"{_L}.layers.{{i}}.input_layernorm.weight"),
    Rule(
        "llm/layers/post_attention_norm/scale", f"{_L}.layers.{{i}}.post_attention_layernorm.weight"
    ),  # fmt: skip
    Rule("llm/layers/pre_ffw_norm/scale", f"{_L}.layers.{{i}}.pre_feedforward_layernorm.weight"),
    Rule("llm/layers/post_ffw_norm/scale", f"{_L}.layers.{{i}}.post_feedforward_layernorm.weight"),
    Rule("llm/final_norm/scale", f"{_L}.norm.weight"),
)

# Hub files keep the pre-4.52 names; transformers >= 4.52 renames them on load the same way.
# transformers 5.x also drops SigLIP's inner `vision_model.` (in memory and in the files it
# writes). First matching prefix wins.
HF_LEGACY_PREFIXES = (
    ("model.vision_tower.vision_model.", "model.vision_tower.vision_model."),
    ("model.vision_tower.", "model.vision_tower.vision_model."),
    ("vision_tower.vision_model.", "model.vision_tower.vision_model."),
    ("vision_tower.", "model.vision_tower.vision_model."),
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
)
HF_LM_HEAD = "lm_head.weight"  # tied to the embedding: optional, checked when present


def hf_canonical_name(name: str) -> str:
    """A transformers tensor name in the >= 4.52 spelling."""
    for old, new in HF_LEGACY_PREFIXES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def identity_rules(config: PaliGemmaConfig, prefix: str = "") -> tuple[Rule, ...]:
    """The map of formats that already use our names (big_vision `.npz`, our safetensors)."""
    names = flatten_dict(abstract_params(config))
    posemb = Tf(posemb=True, grid=config.grid_shape)
    return tuple(Rule(n, prefix + n, posemb if n == "img/pos_embedding" else SAME) for n in names)


def expand(rules: tuple[Rule, ...], config: PaliGemmaConfig) -> list[Placement]:
    """One `Placement` per foreign tensor: "{i}" rules repeated over their stack's depth."""
    out = []
    for rule in rules:
        if "{i}" not in rule.theirs:
            out.append(Placement(rule.ours, rule.sub, rule.theirs, rule.tf))
            continue
        depth = config.vision.depth if rule.ours.startswith("img/") else config.text.depth
        for i in range(depth):
            out.append(Placement(rule.ours, (i, *rule.sub), rule.theirs.format(i=i), rule.tf))
    return out


def hf_placements(config: PaliGemmaConfig) -> list[Placement]:
    return expand(HF_RULES, config)


# ---- tensor sources --------------------------------------------------------------------------


class _Source:
    """Named tensors of a checkpoint: shapes without reading data, then one tensor at a time."""

    path: Path

    def shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def read(self, name: str) -> np.ndarray:
        raise NotImplementedError


class _SafetensorsSource(_Source):
    def __init__(self, path: Path, files: list[Path], rename=lambda n: n):
        self.path = path
        self._where: dict[str, tuple[Path, str]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        for file in files:
            with safe_open(file, framework="numpy") as f:
                for raw in f.keys():
                    name = rename(raw)
                    if name in self._where:
                        raise CheckpointError(f"tensor {raw!r} appears twice", path=file)
                    self._where[name] = (file, raw)
                    self._shapes[name] = tuple(f.get_slice(raw).get_shape())

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self._shapes

    def read(self, name: str) -> np.ndarray:
        file, raw = self._where[name]
        # Opened per tensor so the memory map (counted in RSS) is dropped after each read;
        # get_tensor copies the bytes out of the map.
        with safe_open(file, framework="numpy") as f:
            return f.get_tensor(raw)


class _NpzSource(_Source):
    def __init__(self, path: Path):
        self.path = path
        self._npz = np.load(path, allow_pickle=False)
        self._key = {k.removeprefix("params/"): k for k in self._npz.files}
        self._shapes = {}
        with zipfile.ZipFile(path) as zf:
            for name, key in self._key.items():
                with zf.open(key + ".npy") as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, _ = read_header(member)
                self._shapes[name] = tuple(shape)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self._shapes

    def read(self, name: str) -> np.ndarray:
        x = self._npz[self._key[name]]
        return x.view(ml_dtypes.bfloat16) if x.dtype == np.dtype("V2") else x


# ---- the loader ------------------------------------------------------------------------------


def _load_mapped(
    source: _Source,
    placements: list[Placement],
    config: PaliGemmaConfig,
    optional: frozenset[str] = frozenset(),
) -> Params:
    """Check names and shapes on both sides, then fill the abstract model tensor by tensor."""
    abstract = flatten_dict(abstract_params(config))
    available = source.shapes()
    problems = []
    by_ours: dict[str, list[Placement]] = {}
    for pl in placements:
        by_ours.setdefault(pl.ours, []).append(pl)
    for name in abstract:
        if name not in by_ours:
            problems.append(f"model parameter {name} has no source in the checkpoint map")
    for pl in placements:
        if pl.ours not in abstract:
            problems.append(f"{pl.theirs} maps to {pl.ours}, which the model does not have")
            continue
        sub_shape = abstract[pl.ours].shape[len(pl.index) :]
        if pl.theirs not in available:
            problems.append(f"missing key {pl.theirs}")
        elif not pl.tf.shape_ok(available[pl.theirs], sub_shape):
            problems.append(
                f"key {pl.theirs} has shape {available[pl.theirs]}, the config needs "
                f"{pl.tf.their_shape(sub_shape)}"
            )
    claimed = {pl.theirs for pl in placements} | optional
    problems += [f"unexpected key {name}" for name in sorted(set(available) - claimed)]
    if problems:
        raise CheckpointError(
            f"checkpoint does not match the model ({len(problems)} problems): "
            + "; ".join(problems),
            path=source.path,
            hint="is it a PaliGemma 2 checkpoint of this size and resolution?",
        )
    dtype = jnp.dtype(config.param_dtype)
    flat = {}
    for name, spec in abstract.items():
        array = _aligned_empty(spec.shape, dtype)
        for pl in by_ours[name]:
            sub_shape = spec.shape[len(pl.index) :]
            array[pl.index] = pl.tf.to_ours(source.read(pl.theirs), sub_shape)
        # device_put of a 64-byte-aligned host array is zero-copy on CPU (the jax array takes
        # over the buffer), so each tensor exists once; we drop our numpy view right away.
        flat[name] = jax.device_put(array)
        del array
    return unflatten_dict(flat)


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype, align: int = 64) -> np.ndarray:
    """An uninitialised host array whose data starts on an `align`-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = np.empty(nbytes + align, np.uint8)
    start = -buffer.ctypes.data % align
    return buffer[start : start + nbytes].view(dtype).reshape(shape)


@dataclass(frozen=True)
class LoadedModel:
    config: PaliGemmaConfig
    params: Params
    tokenizer_path: Path | None


def _tokenizer_in(directory: Path) -> Path | None:
    path = directory / TOKENIZER_FILE
    return path if path.is_file() else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read JSON: {error}", path=path) from error


def load_hf(
    directory: str | Path, *, keep_sliding_window: bool = False, param_dtype: str | None = None
) -> LoadedModel:
    """Load a transformers PaliGemma directory; the config comes from its `config.json`."""
    directory = Path(directory)
    config = config_from_hf(
        _read_json(directory / CONFIG_FILE), keep_sliding_window=keep_sliding_window
    )
    if param_dtype:
        config = replace(config, param_dtype=param_dtype)
    index = directory / HF_INDEX_FILE
    if index.is_file():
        shards = sorted(set(_read_json(index)["weight_map"].values()))
        files = [directory / s for s in shards]
    else:
        files = [directory / WEIGHTS_FILE]
    for file in files:
        if not file.is_file():
            raise ModelError("weights file is missing", path=file)
    source = _SafetensorsSource(directory, files, rename=hf_canonical_name)
    params = _load_mapped(source, hf_placements(config), config, frozenset({HF_LM_HEAD}))
    if HF_LM_HEAD in source.shapes():
        head = source.read(HF_LM_HEAD)[: config.vocab_size]
        table = np.asarray(params["llm"]["embedder"]["input_embedding"]).astype(head.dtype)
        if head.shape != table.shape or not np.array_equal(head, table):
            raise CheckpointError(
                "lm_head.weight differs from the embedding; PaliGemma ties them", path=directory
            )
    return LoadedModel(config, params, _tokenizer_in(directory))


def config_from_npz_shapes(shapes: dict[str, tuple[int, ...]]) -> PaliGemmaConfig:
    """Infer the architecture of a big_vision checkpoint from its tensor shapes.

    What shapes cannot tell (the query scaling of 27B, the soft-caps) is taken from the official
    preset with the same text shapes, else from the Gemma 2 2B/9B convention. The patch grid is
    taken as square; a non-square model's `.npz` needs its config passed in.
    """
    try:
        ph, pw, _, W = shapes["img/embedding/kernel"]
        n_img = shapes["img/pos_embedding"][1]
        Lv, _, Nv, _ = shapes[f"{_A}/query/kernel"]
        Mv = shapes[f"{_E}/MlpBlock_0/Dense_0/kernel"][2]
        V, D = shapes["llm/embedder/input_embedding"]
        L, N, _, H = shapes["llm/layers/attn/q_einsum/w"]
        K = shapes["llm/layers/attn/kv_einsum/w"][2]
        F = shapes["llm/layers/mlp/gating_einsum"][3]
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"not a PaliGemma big_vision checkpoint (no {error})") from error
    text = TextConfig(
        width=D, depth=L, num_heads=N, num_kv_heads=K, head_dim=H, mlp_dim=F,
        query_pre_attn_scalar=H,
    )  # fmt: skip
    base = next((c for c in PRESETS.values() if replace(c.text, query_pre_attn_scalar=H) == text),
                None)  # fmt: skip
    grid = round(n_img**0.5)
    if grid**2 != n_img:
        raise CheckpointError(
            f"the {n_img}-token position table is not a square grid",
            hint="pass the model config (load_any(path, config=...)) for a non-square model",
        )
    return PaliGemmaConfig(
        name="from-big-vision",
        vision=VisionConfig(width=W, depth=Lv, mlp_dim=Mv, num_heads=Nv),
        text=base.text if base else text,
        image_size=(grid * ph, grid * pw),
        patch_size=(ph, pw),
        vocab_size=V,
        param_dtype="bfloat16",
    )


def load_big_vision_npz(
    path: str | Path, config: PaliGemmaConfig | None = None, *, param_dtype: str | None = None
) -> LoadedModel:
    """Load a big_vision `.npz`. Without `config`, the architecture is read from the shapes; a
    config of another resolution gets the position embedding resampled (bilinear)."""
    path = Path(path)
    source = _NpzSource(path)
    config = config or config_from_npz_shapes(source.shapes())
    if param_dtype:
        config = replace(config, param_dtype=param_dtype)
    params = _load_mapped(source, expand(identity_rules(config), config), config)
    return LoadedModel(config, params, _tokenizer_in(path.parent))


def _host_arrays(params: Params) -> Iterator[tuple[str, np.ndarray]]:
    for name, value in flatten_dict(params).items():
        yield name, np.asarray(value)


def write_big_vision_npz(path: str | Path, params: Params, *, force: bool = True) -> Path:
    """Write params as big_vision does: flat "/" names, bf16 stored as numpy void `|V2`."""
    path = Path(path)
    check_writable(path, force=force)
    arrays = {
        name: x.view(np.dtype("V2")) if x.dtype == ml_dtypes.bfloat16 else x
        for name, x in _host_arrays(params)
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---- our own model directory -----------------------------------------------------------------


def save_model_dir(
    directory: str | Path,
    params: Params,
    config: PaliGemmaConfig,
    *,
    tokenizer: str | Path | bytes | None = None,
    card: str | None = None,
    force: bool = False,
) -> Path:
    """Write `config.json`, `model.safetensors`, `tokenizer.model` and `README.md`.

    Each file is written atomically; `force` allows overwriting an existing directory's files.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not force:
        check_writable(directory, force=False)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{WEIGHTS_FILE}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        save_file(dict(_host_arrays(params)), tmp, metadata={"format": CONFIG_FORMAT})
        os.chmod(tmp, file_mode())
        os.replace(tmp, directory / WEIGHTS_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_atomic(directory / CONFIG_FILE, config.to_json())
    if tokenizer is not None:
        data = tokenizer if isinstance(tokenizer, bytes) else Path(tokenizer).read_bytes()
        write_atomic(directory / TOKENIZER_FILE, data)
    write_atomic(directory / CARD_FILE, card or _default_card(config))
    return directory


def _default_card(config: PaliGemmaConfig) -> str:
    h, w = config.image_hw
    size = h if h == w else f"{h}x{w} (height x width)"
    return (
        f"# {config.name}\n\nA PaliGemma 2 architecture model saved by omrgemma.\n\n"
        f"- image size: {size} px, {config.num_image_tokens} image tokens\n"
        f"- text: {config.text.depth} layers, width {config.text.width}, vocab {config.vocab_size}\n"
    )


def load_model_dir(directory: str | Path, *, param_dtype: str | None = None) -> LoadedModel:
    """Load a directory written by `save_model_dir`."""
    directory = Path(directory)
    try:
        config = PaliGemmaConfig.from_dict(_read_json(directory / CONFIG_FILE))
    except (TypeError, ValueError, KeyError) as error:
        raise ModelError(f"invalid config: {error}", path=directory / CONFIG_FILE) from error
    if param_dtype:
        config = replace(config, param_dtype=param_dtype)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError("weights file is missing", path=weights)
    source = _SafetensorsSource(directory, [weights])
    params = _load_mapped(source, expand(identity_rules(config), config), config)
    return LoadedModel(config, params, _tokenizer_in(directory))


def detect_layout(path: str | Path) -> str:
    """ "omrgemma", "transformers" or "big_vision"; `ModelError` if none fits."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        return "big_vision"
    config = path / CONFIG_FILE
    if path.is_dir() and config.is_file():
        data = _read_json(config)
        if data.get("format") == CONFIG_FORMAT:
            return "omrgemma"
        if data.get("model_type") == "paligemma":
            return "transformers"
    raise ModelError(
        "not a model: expected a model directory with config.json or a big_vision .npz file",
        path=path,
    )


def load_any(
    path: str | Path,
    *,
    config: PaliGemmaConfig | None = None,
    keep_sliding_window: bool = False,
    param_dtype: str | None = None,
) -> LoadedModel:
    """Load a model in any of the three layouts (see the module docstring).

    `config` is used only for `.npz` files (which carry none); `keep_sliding_window` only for
    transformers checkpoints; `param_dtype` overrides the stored dtype.
    """
    layout = detect_layout(path)
    if layout == "omrgemma":
        return load_model_dir(path, param_dtype=param_dtype)
    if layout == "transformers":
        return load_hf(path, keep_sliding_window=keep_sliding_window, param_dtype=param_dtype)
    return load_big_vision_npz(path, config, param_dtype=param_dtype)
