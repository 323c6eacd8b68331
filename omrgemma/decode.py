"""Fast decoding for PaliGemma: one prefill, then a KV-cached loop compiled once.

The engine knows nothing about tokenisation: it takes prompt ids and returns generated ids.

Layout of one row in the KV cache (S = P + M slots, P = Nimg + Tb):

    [img_1 .. img_Nimg] [pad .. pad] [prompt_1 .. prompt_n] [gen_1 .. gen_M]
     slot 0                            slot P-n .. P-1        slot P .. P+M-1

Prompts are right-aligned inside a bucket of Tb slots so that every row's last prompt token sits
in slot P-1 and all rows write the t-th generated token into the same slot P+t (the model writes
the cache at one index for the whole batch). The padding is masked out of attention, and
positions are `cumsum(input_mask) - 1` (as in big_vision), so RoPE sees each row contiguously.

Nothing recompiles per input: prompt lengths are padded to a few buckets (8/16/32/64, then
multiples of 64), batch sizes to powers of two and the decode budget to a power of two; the real
`max_new_tokens` is a traced scalar. The whole loop is one `jax.lax.while_loop`, which stops when
every row has emitted EOS or at `max_new_tokens`.

Axis letters: B batch, W beams, Tb prompt bucket, P prefix (image + prompt bucket), S cache
slots, M decode budget, V vocab, D width.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from omrgemma import repeat_stop as repeats
from omrgemma.errors import UsageError
from omrgemma.nn import gemma
from omrgemma.nn import paligemma as pg
from omrgemma.quantize import for_forward

PROMPT_BUCKETS = (8, 16, 32, 64)
# Float LLM layer weights up to this size are split per layer for the decode loop (a copy).
SPLIT_LAYERS_MAX_BYTES = 1 << 30
PyTree = Any


# ----------------------------------------------------------------------------- strategies


@dataclasses.dataclass(frozen=True, kw_only=True)
class Greedy:
    """Always the most likely token."""

    def select(self, logits: jax.Array, rng: jax.Array) -> jax.Array:
        """f32[B, V] -> i32[B]."""
        del rng
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sampling:
    """Samples from softmax(logits / temperature), restricted to the `top_k` best when given."""

    temperature: float = 1.0
    top_k: int | None = None

    def __post_init__(self):
        if not self.temperature > 0:
            raise UsageError(
                f"temperature must be > 0, got {self.temperature}",
                hint="use Greedy() for temperature 0",
            )
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"top_k must be >= 1, got {self.top_k}")

    def select(self, logits: jax.Array, rng: jax.Array) -> jax.Array:
        """f32[B, V] -> i32[B]."""
        logits = logits / self.temperature
        if self.top_k is not None:
            kth_best = jax.lax.top_k(logits, self.top_k)[0][:, -1:]
            logits = jnp.where(logits < kth_best, -jnp.inf, logits)
        return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BeamSearch:
    """Keeps the `width` best hypotheses by length-normalised log-probability.

    A hypothesis of n tokens (EOS included) with summed log-probability s scores
    s / n**length_penalty: 0 ranks by the plain sum (favours short outputs), 1 by the mean.
    """

    width: int = 4
    length_penalty: float = 1.0

    def __post_init__(self):
        if self.width < 1:
            raise UsageError(f"beam width must be >= 1, got {self.width}")

    def normalise(self, scores: jax.Array, lengths: jax.Array) -> jax.Array:
        """Length-normalised scores; `scores` f32[...], `lengths` i32[...] (>= 1)."""
        return scores / jnp.maximum(lengths, 1).astype(jnp.float32) ** self.length_penalty


Strategy = Greedy | Sampling | BeamSearch


# ----------------------------------------------------------------------------- logit masks


class LogitMask(Protocol):
    """Constrains decoding by a state carried through the compiled loop.

    Implementations must be hashable (frozen dataclasses): they are static arguments of the
    compiled loop. Every leaf of the state has the batch as its leading axis, so beam search can
    reorder it. Forbidden tokens get -inf; at least one token must stay allowed per row.
    """

    def init_state(self, batch: int) -> PyTree:
        """The state before any token was generated, leaves [B, ...]."""

    def update(self, state: PyTree, tokens: jax.Array) -> PyTree:
        """The state after emitting i32[B] `tokens`."""

    def __call__(self, state: PyTree, logits: jax.Array) -> jax.Array:
        """f32[B, V] -> f32[B, V] with disallowed continuations at -inf."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ForbidTokens:
    """Never emits any of `token_ids` (e.g. pad, or the image placeholder)."""

    token_ids: tuple[int, ...]

    def init_state(self, batch: int) -> PyTree:
        return ()

    def update(self, state: PyTree, tokens: jax.Array) -> PyTree:
        return state

    def __call__(self, state: PyTree, logits: jax.Array) -> jax.Array:
        return logits.at[:, jnp.asarray(self.token_ids)].set(-jnp.inf)


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True, kw_only=True)
class DecodeResult:
    """One generated row.

    `tokens` stop before EOS; `logprobs[i]` is the model's log-probability of `tokens[i]`
    (log-softmax of the raw logits, before any mask or temperature), usable as a confidence.
    """

    tokens: tuple[int, ...]
    logprobs: np.ndarray  # f32[len(tokens)]
    stopped_on_eos: bool
    stopped_on_repeat: bool = False  # stuck repeating a block: stopped, the copies cut off


def bucket_length(n: int, buckets: Sequence[int] = PROMPT_BUCKETS) -> int:
    """The smallest bucket >= n; past the largest bucket, the next multiple of it."""
    for b in buckets:
        if n <= b:
            return b
    step = buckets[-1]
    return -(-n // step) * step


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


# ----------------------------------------------------------------------------- model steps


def _take_rows(cache: PyTree, rows: jax.Array) -> PyTree:
    """Reorders the batch axis (axis 0 of every cache leaf) by i32[B'] `rows`."""
    return jax.tree.map(lambda a: jnp.take(a, rows, axis=0), cache)


def _prefill(params, config, images, prompts, prompt_mask, cache_len, cache_dtype):
    """Runs image + prompt through the model, filling slots [0, P) of a fresh cache.

    Returns (logits f32[B, V] for the first new token, cache, slot_valid bool[B, S] for the
    prefix slots, next_position i32[B]).
    """
    batch = prompts.shape[0]
    x = jnp.concatenate(
        [pg.encode_image(params, config, images), pg.embed_tokens(params, config, prompts)], axis=1
    )
    prefix_len = x.shape[1]
    num_image = prefix_len - prompts.shape[1]
    input_mask = jnp.concatenate([jnp.ones((batch, num_image), bool), prompt_mask], axis=1)
    positions = jnp.cumsum(input_mask, axis=1).astype(jnp.int32) - 1
    attn_mask = pg.make_attn_mask(input_mask, jnp.zeros_like(positions))  # full attention
    attn_mask = jnp.pad(attn_mask, ((0, 0), (0, 0), (0, cache_len - prefix_len)))
    cache = pg.init_cache(config, batch, cache_len, cache_dtype)
    logits, cache = pg.forward(
        params,
        config,
        x,
        positions,
        attn_mask,
        cache=cache,
        cache_index=jnp.int32(0),
        only_last=True,
    )
    slot_valid = jnp.pad(input_mask, ((0, 0), (0, cache_len - prefix_len)))
    return logits[:, -1], cache, slot_valid, positions[:, -1] + 1


def _extend(params, config, tokens, positions, slot_valid, prefix_len, cache, index):
    """Feeds i32[B] `tokens` at i32[B] `positions` into cache slot `index`; logits f32[B, V].

    A new token sees the valid prefix slots and every generated slot up to its own.
    """
    slots = jnp.arange(slot_valid.shape[1])
    attn_mask = jnp.where(slots < prefix_len, slot_valid, slots <= index)
    x = pg.embed_tokens(params, config, tokens[:, None])
    logits, cache = pg.forward(
        params, config, x, positions[:, None], attn_mask[:, None, :], cache=cache, cache_index=index
    )
    return logits[:, 0], cache


def _masked(logit_mask: LogitMask | None, state: PyTree, logits: jax.Array) -> jax.Array:
    return logits if logit_mask is None else logit_mask(state, logits)


def _forced(forced: jax.Array, t: jax.Array, logits: jax.Array) -> jax.Array:
    """`logits` f32[R, V] with only token `forced[r, t]` allowed in rows whose forced start
    (i32[R, F], -1 where free) is not over at step `t`."""
    column = jnp.minimum(t, forced.shape[1] - 1)
    wanted = jnp.where(t < forced.shape[1], forced[:, column], -1)
    keep = (wanted < 0)[:, None] | (jnp.arange(logits.shape[-1])[None, :] == wanted[:, None])
    return jnp.where(keep, logits, -jnp.inf)


def _token_logprob(logprobs: jax.Array, tokens: jax.Array) -> jax.Array:
    """f32[..., V], i32[...] -> f32[...]: the log-probability of each chosen token."""
    return jnp.take_along_axis(logprobs, tokens[..., None], axis=-1)[..., 0]


# ----------------------------------------------------------------------------- loops
#
# Both loops alternate "choose the next tokens from logits" and "run the model on them". The
# first choice uses the prefill's logits, outside the loop, so the loop body is model-then-choose
# and no model step is wasted after the last token.


def _sampling_loop(
    step, logits, done, max_new, rng, forced, state, *, strategy, budget, eos_id, pad_id,
    logit_mask, repeat_stop,
):  # fmt: skip
    """Greedy or sampled decoding of all rows in lockstep; rows that are done emit `pad_id`.

    `step(cache, tokens i32[B], i) -> (logits f32[B, V], cache)` feeds the i-th generated
    tokens to the model; `step.initial` is the prefilled cache. A row whose newest tokens
    repeat a short block (`repeat_stop`) stops there. Returns (tokens i32[B, M], logprobs
    f32[B, M], looped_at i32[B]: the index of the token that completed the repeats, or -1).
    """
    batch = logits.shape[0]

    def choose(c, logits):
        t, done = c["t"], c["done"]
        rng, key = jax.random.split(c["rng"])
        allowed = _forced(forced, t, _masked(logit_mask, c["state"], logits))
        token = strategy.select(allowed, key)
        token = jnp.where(done, pad_id, token)
        logprob = jnp.where(done, 0.0, _token_logprob(jax.nn.log_softmax(logits), token))
        tokens = c["tokens"].at[:, t].set(token)
        looped = jnp.zeros_like(done)
        if repeat_stop is not None:
            back = t - jnp.arange(repeat_stop.window)
            recent = jnp.where(back >= 0, tokens[:, jnp.maximum(back, 0)], -1)
            looped = ~done & (token != eos_id) & (repeats.period(recent, repeat_stop) > 0)
        return dict(
            c,
            t=t + 1,
            last=token,
            tokens=tokens,
            logprobs=c["logprobs"].at[:, t].set(logprob),
            looped_at=jnp.where(looped, t, c["looped_at"]),
            done=done | (token == eos_id) | looped,
            state=c["state"] if logit_mask is None else logit_mask.update(c["state"], token),
            rng=rng,
        )

    def cond(c):
        return (c["t"] < max_new) & ~jnp.all(c["done"])

    def body(c):
        logits, cache = step(c["cache"], c["last"], c["t"] - 1)
        return choose(dict(c, cache=cache), logits)

    carry = dict(
        t=jnp.int32(0),
        cache=step.initial,
        last=jnp.zeros((batch,), jnp.int32),
        tokens=jnp.full((batch, budget), pad_id, jnp.int32),
        logprobs=jnp.zeros((batch, budget), jnp.float32),
        looped_at=jnp.full((batch,), -1, jnp.int32),
        done=done,
        state=state,
        rng=rng,
    )
    carry = jax.lax.while_loop(cond, body, choose(carry, logits))
    return carry["tokens"], carry["logprobs"], carry["looped_at"]


def _beam_loop(
    step, logits, done, max_new, forced, state, *, beam, budget, eos_id, pad_id, logit_mask
):  # fmt: skip
    """Beam search over `beam.width` hypotheses per row; returns the best one of each row.

    `logits` f32[B*W, V] and `step.initial` (the cache) are already repeated W times per row.
    Finished hypotheses stay in the beam with a frozen score (they may only "continue" with
    `pad_id` at no cost), so they compete with live ones by normalised score until the end.
    Returns (tokens i32[B, M], logprobs f32[B, M]).
    """
    width = beam.width
    batch, vocab = logits.shape[0] // width, logits.shape[1]
    stay = jnp.full((vocab,), -jnp.inf).at[pad_id].set(0.0)

    def gather(a, parent):  # a [B, W, ...] -> rows of the chosen parents
        return jnp.take_along_axis(a, parent.reshape(parent.shape + (1,) * (a.ndim - 2)), axis=1)

    def choose(c, logits):
        t, finished, scores, lengths = c["t"], c["finished"], c["scores"], c["lengths"]
        raw = jax.nn.log_softmax(logits).reshape(batch, width * vocab)
        allowed = _forced(forced, t, _masked(logit_mask, c["state"], logits))
        allowed = jax.nn.log_softmax(allowed)
        candidates = scores[..., None] + allowed.reshape(batch, width, vocab)
        candidates = jnp.where(finished[..., None], scores[..., None] + stay, candidates)
        cand_lengths = jnp.where(finished, lengths, t + 1)[..., None]
        ranked = beam.normalise(candidates, cand_lengths).reshape(batch, width * vocab)
        _, best = jax.lax.top_k(ranked, width)  # [B, W] into W*V
        parent, token = best // vocab, (best % vocab).astype(jnp.int32)
        was_finished = gather(finished, parent)
        logprob = jnp.where(was_finished, 0.0, jnp.take_along_axis(raw, best, axis=1))
        rows = (jnp.arange(batch)[:, None] * width + parent).reshape(-1)
        state = c["state"]
        if logit_mask is not None:
            state = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), state)
            state = logit_mask.update(state, token.reshape(-1))
        return dict(
            c,
            t=t + 1,
            cache=_take_rows(c["cache"], rows),
            last=token.reshape(-1),
            tokens=gather(c["tokens"], parent).at[:, :, t].set(token),
            logprobs=gather(c["logprobs"], parent).at[:, :, t].set(logprob),
            scores=jnp.take_along_axis(candidates.reshape(batch, width * vocab), best, axis=1),
            lengths=jnp.where(was_finished, gather(lengths, parent), t + 1),
            finished=was_finished | (token == eos_id),
            state=state,
        )

    def cond(c):
        return (c["t"] < max_new) & ~jnp.all(c["finished"])

    def body(c):
        logits, cache = step(c["cache"], c["last"], c["t"] - 1)
        return choose(dict(c, cache=cache), logits)

    first_only = jnp.where(jnp.arange(width) == 0, 0.0, -jnp.inf)
    carry = dict(
        t=jnp.int32(0),
        cache=step.initial,
        last=jnp.zeros((batch * width,), jnp.int32),
        tokens=jnp.full((batch, width, budget), pad_id, jnp.int32),
        logprobs=jnp.zeros((batch, width, budget), jnp.float32),
        # Only beam 0 is live at first, so the first step does not pick one token W times.
        scores=jnp.broadcast_to(first_only, (batch, width)),
        lengths=jnp.zeros((batch, width), jnp.int32),
        finished=jnp.broadcast_to(done[:, None], (batch, width)),
        state=jax.tree.map(lambda a: jnp.repeat(a, width, axis=0), state),
    )
    carry = jax.lax.while_loop(cond, body, choose(carry, logits))
    best = jnp.argmax(beam.normalise(carry["scores"], carry["lengths"]), axis=1)
    pick = jnp.arange(batch)
    # Beam search runs to EOS or the budget; `generate` trims a repeating tail afterwards.
    return carry["tokens"][pick, best], carry["logprobs"][pick, best], jnp.full((batch,), -1)


def _split_layers_if_worth_it(params: PyTree, config) -> PyTree:
    """Per-layer LLM weights for the decode loop when they are small plain compute-dtype arrays.

    Then each step reads them in place; from the stacked [L, ...] arrays every step would first
    copy each layer's slice (about half of a batch-1 step of a small model). Weights stored in
    another dtype (bf16, int8 `QTensor`) are converted per layer anyway, which reads the slice
    in the same pass, and a copy of big weights would cost too much memory.
    """
    layers = params["llm"]["layers"]
    leaves = jax.tree.leaves(layers)
    compute = jnp.dtype(config.compute_dtype)
    plain = all(isinstance(a, jax.Array) and a.dtype == compute for a in leaves)
    if not plain or sum(a.nbytes for a in leaves) > SPLIT_LAYERS_MAX_BYTES:
        return params
    return {**params, "llm": {**params["llm"], "layers": gemma.split_layers(layers)}}


class _Step:
    """The model side of the loops: `step(cache, tokens, i)` feeds the i-th generated tokens
    (position next_position + i, cache slot prefix_len + i); `initial` is the prefilled cache."""

    def __init__(self, params, config, cache, slot_valid, next_position, prefix_len):
        self.params, self.config = params, config
        self.slot_valid, self.next_position, self.prefix_len = slot_valid, next_position, prefix_len
        self.initial = cache

    def __call__(self, cache, tokens, i):
        position, slot = self.next_position + i, self.prefix_len + i
        return _extend(self.params, self.config, tokens, position, self.slot_valid,
                       self.prefix_len, cache, slot)  # fmt: skip


@functools.partial(
    jax.jit,
    static_argnames=("config", "strategy", "budget", "logit_mask", "cache_dtype", "repeat_stop"),
)
def _generate(
    params,
    images,
    prompts,
    prompt_mask,
    done,
    forced,
    state,
    max_new,
    eos_id,
    pad_id,
    rng,
    *,
    config,
    strategy,
    budget,
    logit_mask,
    cache_dtype,
    repeat_stop,
):
    """The compiled engine: prefill, then the loop. Returns (i32[B, M], f32[B, M], i32[B]).

    Only shapes and the static arguments pick a compiled version; the ids and the token budget
    `max_new` (<= `budget`) are traced.
    """
    params = for_forward(params)  # int8 weights are dequantised layer by layer, in the model
    params = _split_layers_if_worth_it(params, config)
    prefix_len = config.num_image_tokens + prompts.shape[1]
    logits, cache, slot_valid, next_position = _prefill(
        params, config, images, prompts, prompt_mask, prefix_len + budget, cache_dtype
    )
    common = dict(budget=budget, eos_id=eos_id, pad_id=pad_id, logit_mask=logit_mask)
    if isinstance(strategy, BeamSearch):
        rows = jnp.repeat(jnp.arange(prompts.shape[0]), strategy.width)
        step = _Step(
            params,
            config,
            _take_rows(cache, rows),
            slot_valid[rows],
            next_position[rows],
            prefix_len,
        )
        return _beam_loop(
            step, logits[rows], done, max_new, forced[rows], state, beam=strategy, **common
        )  # fmt: skip
    step = _Step(params, config, cache, slot_valid, next_position, prefix_len)
    return _sampling_loop(
        step, logits, done, max_new, rng, forced, state, strategy=strategy, repeat_stop=repeat_stop,
        **common,
    )  # fmt: skip


# ----------------------------------------------------------------------------- public API


def generate(
    params: PyTree,
    config,
    images: np.ndarray | jax.Array,
    prompt_ids: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int = 0,
    strategy: Strategy = Greedy(),
    logit_mask: LogitMask | None = None,
    seed: int = 0,
    cache_dtype: Any = jnp.float32,
    mesh: jax.sharding.Mesh | None = None,
    repeat_stop: repeats.RepeatStop | None = repeats.DEFAULT,
    forced_ids: Sequence[Sequence[int]] | None = None,
    mask_state: PyTree | None = None,
) -> list[DecodeResult]:
    """Generates up to `max_new_tokens` ids after each image + prompt.

    `forced_ids` (one list per row, may be empty): the first tokens each row must generate.
    They are generated (decoded causally, scored with the model's own log-probabilities, part
    of the result), not read as prompt, so the model continues a text it wrote itself.

    `mask_state`: the `logit_mask`'s starting state for these rows (leaves [B, ...], e.g.
    per-row bounds, `omrgemma.measure_budget`); default `logit_mask.init_state(B)`. It is a
    traced input, so rows may differ without a recompilation.

    A row stuck repeating a short block (`repeat_stop`, see `omrgemma.repeat_stop`; None: off)
    stops there in greedy and sampled decoding, and loses the copies after the first one (beam
    search: after decoding); its result says `stopped_on_repeat`.

    `images` f32[B, H, W, 3] in [-1, 1]; `prompt_ids` B lists of ids (BOS + prefix + SEP, all
    attended bidirectionally); `params` float or `quantize.quantize`d (sharded with
    `sharding.shard_params` when `mesh` is given: the batch is then split over its "data" axis).
    Rows may differ in prompt and output length; each stops at its own EOS.
    """
    batch = len(prompt_ids)
    if batch == 0:
        return []
    if len(images) != batch:
        raise UsageError(f"{len(images)} images but {batch} prompts")
    if max_new_tokens < 1:
        raise UsageError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if any(len(p) == 0 for p in prompt_ids):
        raise UsageError("empty prompt", hint="a prompt holds at least the BOS id")
    if forced_ids is not None and len(forced_ids) != batch:
        raise UsageError(f"{len(forced_ids)} forced starts but {batch} prompts")

    # Buckets: the batch to a power of two (and a multiple of the data axis), the prompt to
    # PROMPT_BUCKETS, the decode budget to a power of two.
    padded = _next_power_of_two(batch)
    if mesh is not None:
        data = mesh.shape["data"]
        padded = -(-padded // data) * data
    prompt_len = bucket_length(max(len(p) for p in prompt_ids))
    budget = max(8, _next_power_of_two(max_new_tokens))

    prompts = np.full((padded, prompt_len), pad_id, np.int32)
    prompt_mask = np.zeros((padded, prompt_len), bool)
    for row, ids in enumerate(prompt_ids):
        prompts[row, prompt_len - len(ids) :] = ids
        prompt_mask[row, prompt_len - len(ids) :] = True
    prompt_mask[batch:, -1] = True  # filler rows: one token, so no row attends to nothing
    done = np.arange(padded) >= batch  # filler rows start finished
    images = np.asarray(images, np.float32)
    images = np.concatenate([images, np.zeros((padded - batch,) + images.shape[1:], np.float32)])

    forced = np.full((padded, _forced_width(forced_ids)), -1, np.int32)
    for row, ids in enumerate(forced_ids or ()):
        forced[row, : len(ids)] = ids
    state = _mask_state(logit_mask, mask_state, batch, padded)
    inputs = (images, prompts, prompt_mask, done, forced)
    if mesh is not None:
        from omrgemma.sharding import shard_batch

        inputs = shard_batch(inputs, mesh)
    tokens, logprobs, looped_at = _generate(
        params,
        *inputs,
        state,
        jnp.int32(max_new_tokens),
        jnp.int32(eos_id),
        jnp.int32(pad_id),
        jax.random.key(seed),
        config=config,
        strategy=strategy,
        budget=budget,
        logit_mask=logit_mask,
        cache_dtype=cache_dtype,
        repeat_stop=repeat_stop,
    )
    tokens, logprobs, looped_at = np.asarray(tokens), np.asarray(logprobs), np.asarray(looped_at)
    results = []
    for row in range(batch):
        ids = tokens[row, :max_new_tokens]
        eos_at = np.flatnonzero(ids == eos_id)
        end = int(eos_at[0]) if eos_at.size else max_new_tokens
        if looped_at[row] >= 0:
            end = int(looped_at[row]) + 1
        kept = end
        if not eos_at.size and repeat_stop is not None:
            kept = repeats.trimmed_length(ids[:end], repeat_stop)
        results.append(
            DecodeResult(
                tokens=tuple(int(i) for i in ids[:kept]),
                logprobs=logprobs[row, :kept].astype(np.float32),
                stopped_on_eos=bool(eos_at.size),
                stopped_on_repeat=kept < end,
            )
        )
    return results


def _mask_state(
    logit_mask: LogitMask | None, mask_state: PyTree | None, batch: int, padded: int
) -> PyTree:
    """The mask's starting state for all `padded` rows: `mask_state` for the first `batch`,
    the mask's own initial state for the filler rows."""
    if logit_mask is None:
        if mask_state is not None:
            raise UsageError("a mask state was given without a logit mask")
        return ()
    if mask_state is None:
        return logit_mask.init_state(padded)
    filler = logit_mask.init_state(padded - batch)

    def pad(given: Any, extra: Any) -> jax.Array:
        given = np.asarray(given)
        if given.shape[0] != batch:
            raise UsageError(f"the mask state has {given.shape[0]} rows for {batch} prompts")
        return jnp.concatenate([jnp.asarray(given, jnp.asarray(extra).dtype), extra])

    return jax.tree.map(pad, mask_state, filler)


def _forced_width(forced_ids: Sequence[Sequence[int]] | None) -> int:
    """Columns of the forced-start array: 1 for none, else a power of two (few compilations)."""
    longest = max((len(ids) for ids in forced_ids or ()), default=0)
    return 1 if longest == 0 else max(8, _next_power_of_two(longest))


def compiled_variants() -> int:
    """How many versions of the engine are compiled in this process (for recompilation checks)."""
    return _generate._cache_size()
