"""A language model's context window: how many positions a prompt and its continuation may take together.

A GPT with learned positions attends to at most `max_sequence_length` positions (its table of positions);
asked for more, its graph failed deep inside (`gpt_1/positions_1/Slice`), or quietly answered an empty output
with score 0 and fewer new tokens than asked. Here a prompt plus `max_new_tokens` beyond the context is refused
by name with both numbers, or, when the request asks for it (`truncate`), the prompt keeps its last tokens:

    a prompt of 600 tokens + max_new_tokens 32 = 632 exceeds the model's context of 201 tokens (its
    max_sequence_length): shorten the prompt, ask for fewer new tokens, or set truncate (keeps each prompt's
    last 169 tokens)

The checks are graph ops, so the export, `tflm serve`, `tflm.export.load(...).run` and `tflm generate` refuse
alike. A GPT with rotary positions and a Transformer-XL (relative positions) have no such bound; a
Transformer-XL attends to its memory (`memory_length` states of earlier segments) and the current segment.
"""

import tensorflow as tf

from tflm.text.special_tokens import PAD_ID


def context_length(model):
    """The most positions `model` attends to (prompt and continuation), or None where nothing bounds them."""
    if getattr(model, "positions", None) is not None and getattr(model, "max_sequence_length", None):
        return int(model.max_sequence_length)
    return None


def context_info(model):
    """What an export records of the model's context (tflm.json's "context")."""
    info = {"tokens": context_length(model)}
    if getattr(model, "memory_length", None) is not None:
        info["memory_length"] = int(model.memory_length)
        info["note"] = ("relative positions: any length; attends to the last memory_length states of earlier "
                        "segments and the current segment")
    return info


def fit_prompts(start, forced_ids, forced_lengths, new_tokens, context, truncate=False):
    """Encoded prompts (`Generator.encode_prompt`'s `start (B,)`, `forced_ids (B, P)`, `forced_lengths (B,)`)
    that leave room for `new_tokens` within `context` positions: unchanged when they fit; else an
    InvalidArgumentError naming the numbers, or with `truncate` each prompt's last tokens that fit.

    Args:
        new_tokens: int32 scalar, the tokens to generate.
        context: int or None (no bound: returned unchanged).
        truncate: bool scalar (a tensor or a Python bool).
    """
    if context is None:
        return start, forced_ids, forced_lengths
    new_tokens = tf.cast(new_tokens, tf.int32)
    truncate = tf.cast(truncate, tf.bool)
    prompt = forced_lengths + 1  # the first token starts the decoding, the others are forced
    longest = tf.reduce_max(tf.concat([prompt, [0]], 0))
    room = context - new_tokens  # the prompt tokens that fit
    checks = [
        tf.debugging.Assert(new_tokens < context, [tf.strings.format(
            "max_new_tokens = {} leaves no room for a prompt: the model attends to {} tokens (its context; "
            "max_sequence_length)", (new_tokens, context))], name="check_context_new_tokens"),
        tf.debugging.Assert(tf.logical_or(truncate, longest <= room), [tf.strings.format(
            "a prompt of {} tokens + max_new_tokens {} = {} exceeds the model's context of {} tokens (its "
            "max_sequence_length): shorten the prompt, ask for fewer new tokens, or set truncate (keeps each "
            "prompt's last {} tokens)", (longest, new_tokens, longest + new_tokens, context, room))],
            name="check_context"),
    ]
    with tf.control_dependencies(checks):
        keep = tf.maximum(room, 1)
        full = tf.RaggedTensor.from_tensor(tf.concat([start[:, tf.newaxis], forced_ids], axis=1), lengths=prompt)
        drop = tf.maximum(prompt - keep, 0)  # each row's oldest tokens beyond the room
        kept = tf.ragged.boolean_mask(full, tf.ragged.range(prompt) >= drop[:, tf.newaxis])
        dense = kept.to_tensor(PAD_ID)
        forced = tf.pad(dense[:, 1:], [[0, 0], [0, 1]])  # at least one column, as encode_prompt gives
        return dense[:, 0], forced, tf.cast(kept.row_lengths(), tf.int32) - 1


def check_scored(tokens, context):
    """An Assert op: texts of `tokens` (int `(batch,)`) fit the context (scoring reads a separator and the
    text's tokens but the last); None where nothing bounds them."""
    if context is None:
        return None
    longest = tf.reduce_max(tf.concat([tf.cast(tokens, tf.int32), [0]], 0))
    return tf.debugging.Assert(longest <= context, [tf.strings.format(
        "a text of {} tokens exceeds the model's context of {} tokens (its max_sequence_length): score a shorter "
        "text, or its parts", (longest, context))], name="check_context_score")
