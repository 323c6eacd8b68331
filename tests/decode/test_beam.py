"""Beam search against a plain-Python beam search over uncached model calls."""

from __future__ import annotations

import numpy as np
import pytest

from omrgemma.decode import BeamSearch, generate

from .tinymodel import NEVER, PROMPTS, teacher_forced_logprobs

STEPS = 4


def reference_beam(tiny, row, width, steps, eos, alpha):
    """The same search rules, written out: finished hypotheses keep their score and compete by
    score / len**alpha (EOS counted in len); returns the best (tokens without EOS, finished)."""
    prompt = PROMPTS[row]
    beams = [((), 0.0, False)]  # (tokens incl. EOS, summed log-prob, finished)
    for _ in range(steps):
        candidates = []
        for tokens, score, finished in beams:
            if finished:
                candidates.append((tokens, score, True))
                continue
            logprobs = teacher_forced_logprobs(tiny, row, prompt, tokens)[-1]
            for token, lp in enumerate(logprobs):
                candidates.append((tokens + (token,), score + float(lp), token == eos))
        # Stable sort: ties keep the flattened (beam, token) order, as lax.top_k does.
        candidates.sort(key=lambda c: -c[1] / max(len(c[0]), 1) ** alpha)
        beams = candidates[:width]
        if all(f for _, _, f in beams):
            break
    tokens, _, finished = max(beams, key=lambda c: c[1] / max(len(c[0]), 1) ** alpha)
    return (tokens[:-1] if finished else tokens), finished


def test_width_one_is_greedy(tiny):
    greedy = generate(
        tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=STEPS, eos_id=NEVER
    )
    beam = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=NEVER,
        strategy=BeamSearch(width=1, length_penalty=1.0),
    )
    for g, b in zip(greedy, beam, strict=True):
        assert g.tokens == b.tokens
        np.testing.assert_allclose(g.logprobs, b.logprobs, atol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_equals_reference_search(tiny, alpha):
    """Width 3 over a batch of prompts of different lengths, with an EOS some hypotheses hit."""
    strategy = BeamSearch(width=3, length_penalty=alpha)
    free = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=NEVER,
        strategy=strategy,
    )
    eos = free[1].tokens[1]
    results = generate(
        tiny.params,
        tiny.config,
        tiny.images,
        PROMPTS,
        max_new_tokens=STEPS,
        eos_id=eos,
        strategy=strategy,
    )
    for row, result in enumerate(results):
        tokens, finished = reference_beam(tiny, row, 3, STEPS, eos, alpha)
        assert result.tokens == tokens and result.stopped_on_eos == finished
        ref = teacher_forced_logprobs(tiny, row, PROMPTS[row], result.tokens)
        np.testing.assert_allclose(
            result.logprobs, ref[np.arange(len(tokens)), list(tokens)], atol=1e-4
        )
