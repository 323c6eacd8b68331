"""The decode engine against uncached recomputation with `prefix_lm_logits` (TINY model)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from omrgemma.decode import (
    BeamSearch,
    ForbidTokens,
    Sampling,
    bucket_length,
    compiled_variants,
    generate,
)
from omrgemma.errors import UsageError

from .tinymodel import NEVER, PROMPTS, teacher_forced_logprobs

STEPS = 6


def test_bucket_length():
    assert [bucket_length(n) for n in (1, 8, 9, 33, 64, 65, 130)] == [8, 8, 16, 64, 64, 128, 192]


def test_greedy_equals_an_uncached_argmax_loop(tiny):
    """The KV-cached loop emits what re-running the whole model on prompt + output emits."""
    row = 2  # the longest prompt: bucket 16, so rows 0 and 1 carry padding in front
    result = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER
    )[row]
    tokens, logprobs = [], []
    for _ in range(STEPS):  # each step runs the model on image + prompt + tokens so far
        next_logprobs = teacher_forced_logprobs(tiny, row, PROMPTS[row], tokens)[-1]
        tokens.append(int(next_logprobs.argmax()))
        logprobs.append(float(next_logprobs.max()))
    assert result.tokens == tuple(tokens)
    np.testing.assert_allclose(result.logprobs, logprobs, atol=1e-4)
    assert not result.stopped_on_eos


def test_every_row_is_greedy_given_its_own_prefix(tiny):
    """Each token of each row is the argmax of the teacher-forced logits; log-probs match."""
    results = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER
    )
    for row, (prompt, result) in enumerate(zip(PROMPTS, results, strict=True)):
        ref = teacher_forced_logprobs(tiny, row, prompt, result.tokens)
        assert len(result.tokens) == STEPS
        assert list(result.tokens) == list(ref[:-1].argmax(-1))
        np.testing.assert_allclose(result.logprobs, ref[np.arange(STEPS), result.tokens], atol=1e-4)


def test_batched_equals_one_by_one(tiny):
    """Rows of different prompt lengths (buckets 8 and 16 when alone) decode as if alone."""
    batched = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER
    )
    for row, prompt in enumerate(PROMPTS):
        (alone,) = generate(
            tiny.params,
            tiny.config,
            tiny.images[row : row + 1],
            [prompt],
            max_new_tokens=STEPS,
            eos_id=NEVER,
        )
        assert alone.tokens == batched[row].tokens
        np.testing.assert_allclose(alone.logprobs, batched[row].logprobs, atol=1e-5)


def test_each_row_stops_at_its_own_eos(tiny):
    free = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER
    )
    eos = free[0].tokens[2]
    stopped = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=eos
    )
    for before, after in zip(free, stopped, strict=True):
        if eos in before.tokens:
            cut = before.tokens.index(eos)
            assert after.tokens == before.tokens[:cut] and after.stopped_on_eos
        else:
            assert after.tokens == before.tokens and not after.stopped_on_eos
        np.testing.assert_allclose(after.logprobs, before.logprobs[: len(after.tokens)], atol=1e-5)
    assert stopped[0].stopped_on_eos and len(stopped[0].tokens) <= 2


def test_same_bucket_does_not_recompile(tiny):
    """Prompt lengths 5 and 3 share bucket 8; budgets 5 and 7 share decode budget 8."""
    image = tiny.images[:1]
    generate(tiny.params, tiny.config, image, [[2, 5, 6, 7, 8]], max_new_tokens=5, eos_id=NEVER)
    before = compiled_variants()
    generate(tiny.params, tiny.config, image, [[2, 9, 4]], max_new_tokens=7, eos_id=NEVER)
    assert compiled_variants() == before
    generate(tiny.params, tiny.config, image, [list(range(2, 22))], max_new_tokens=7, eos_id=NEVER)
    assert compiled_variants() == before + 1  # bucket 32 is a new shape: the counter counts


def test_sampling_with_top_k_1_is_greedy(tiny):
    greedy = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER
    )
    sampled = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=NEVER,
        strategy=Sampling(temperature=3.0, top_k=1),
        seed=7,
    )
    for g, s in zip(greedy, sampled, strict=True):
        assert g.tokens == s.tokens
        np.testing.assert_allclose(g.logprobs, s.logprobs, atol=1e-5)


def test_sampled_logprobs_are_the_models_and_stay_in_top_k(tiny):
    """Log-probs are the unscaled model's (not the temperature's); tokens stay in the top k."""
    strategy = Sampling(temperature=2.0, top_k=3)
    results = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=NEVER,
        strategy=strategy,
        seed=1,
    )
    again = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=NEVER,
        strategy=strategy,
        seed=1,
    )
    other = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=NEVER,
        strategy=strategy,
        seed=2,
    )
    assert [r.tokens for r in results] == [r.tokens for r in again]
    assert [r.tokens for r in results] != [r.tokens for r in other]
    greedy_paths = 0
    for row, (prompt, result) in enumerate(zip(PROMPTS, results, strict=True)):
        ref = teacher_forced_logprobs(tiny, row, prompt, result.tokens)[:-1]
        np.testing.assert_allclose(result.logprobs, ref[np.arange(STEPS), result.tokens], atol=1e-4)
        top3 = np.argsort(-ref, axis=-1)[:, :3]
        assert all(t in top3[i] for i, t in enumerate(result.tokens))
        greedy_paths += list(result.tokens) == list(ref.argmax(-1))
    assert greedy_paths < len(PROMPTS)  # it really sampled


@dataclasses.dataclass(frozen=True, kw_only=True)
class EndAfter:
    """A stateful mask: after `count` tokens only `token` is allowed (a length grammar)."""

    count: int
    token: int

    def init_state(self, batch):
        return jnp.zeros((batch,), jnp.int32)

    def update(self, state, tokens):
        return state + 1

    def __call__(self, state, logits):
        only = jnp.full_like(logits, -jnp.inf).at[:, self.token].set(logits[:, self.token])
        return jnp.where((state >= self.count)[:, None], only, logits)


def test_forbidden_tokens_are_never_emitted(tiny):
    free = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER
    )
    banned = tuple(sorted({t for r in free for t in r.tokens}))
    masked = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=NEVER,
        logit_mask=ForbidTokens(token_ids=banned),
    )
    for row, (prompt, result) in enumerate(zip(PROMPTS, masked, strict=True)):
        assert len(result.tokens) == STEPS and not set(result.tokens) & set(banned)
        ref = teacher_forced_logprobs(tiny, row, prompt, result.tokens)[:-1]
        # the best allowed token, with the unmasked model's log-probability
        ref_allowed = ref.copy()
        ref_allowed[:, list(banned)] = -np.inf
        assert list(result.tokens) == list(ref_allowed.argmax(-1))
        np.testing.assert_allclose(result.logprobs, ref[np.arange(STEPS), result.tokens], atol=1e-4)


@pytest.mark.parametrize("strategy", [None, BeamSearch(width=3)])
def test_a_forced_start_is_generated_then_decoding_goes_on_from_it(tiny, strategy):
    """Each row begins with its forced ids (any length, none for a row), scored with the
    model's own log-probabilities; then it continues greedily (beam: the best beam) from them."""
    kwargs = {} if strategy is None else {"strategy": strategy}
    free = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER,
        **kwargs,
    )  # fmt: skip
    starts = [[(t + 1) % 7 for t in free[0].tokens[:3]], [], [4]]  # not what it would write
    forced = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER,
        forced_ids=starts, **kwargs,
    )  # fmt: skip
    assert forced[1].tokens == free[1].tokens  # nothing forced: as before
    for row in (0, 2):
        result, start = forced[row], starts[row]
        assert list(result.tokens[: len(start)]) == start and result.tokens != free[row].tokens
        ref = teacher_forced_logprobs(tiny, row, PROMPTS[row], result.tokens)
        np.testing.assert_allclose(result.logprobs, ref[np.arange(STEPS), result.tokens], atol=1e-4)
        if strategy is None:  # after the start, the argmax given it
            assert list(result.tokens[len(start) :]) == list(ref[len(start) : -1].argmax(-1))


def test_forcing_the_greedy_start_changes_nothing(tiny):
    free = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER
    )
    forced = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER,
        forced_ids=[list(r.tokens[:2]) for r in free],
    )  # fmt: skip
    for a, b in zip(free, forced, strict=True):
        assert a.tokens == b.tokens
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)


def test_stateful_mask_drives_every_row_to_eos(tiny):
    eos = 5
    results = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=eos,
        logit_mask=EndAfter(count=3, token=eos),
    )
    for result in results:
        assert result.stopped_on_eos and len(result.tokens) <= 3


def test_bad_arguments_are_usage_errors(tiny):
    with pytest.raises(UsageError, match="empty prompt"):
        generate(tiny.params, tiny.config, tiny.images[:1], [[]], max_new_tokens=2, eos_id=1)
    with pytest.raises(UsageError, match="2 images but 1 prompts"):
        generate(tiny.params, tiny.config, tiny.images[:2], [[2]], max_new_tokens=2, eos_id=1)
    with pytest.raises(UsageError, match="1 forced starts but 3 prompts"):
        generate(tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=2, eos_id=1,
                 forced_ids=[[1]])  # fmt: skip
    with pytest.raises(UsageError, match="temperature"):
        Sampling(temperature=0.0)
