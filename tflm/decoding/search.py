"""One entry point over the strategies, configured by a `DecodingOptions` dataclass."""

import dataclasses
import typing

import tensorflow as tf

from tflm.decoding.beam_search import beam_search, length_penalty
from tflm.decoding.common import SearchSettings, row_max_lengths
from tflm.decoding.greedy import greedy_search
from tflm.decoding.sampling import sample
from tflm.text.special_tokens import BOS_ID, PAD_ID

STRATEGIES = ("greedy", "beam", "sample")


class _Fields:
    """`__dataclass_fields__` of a dataclass with aliases: all fields on the class, none of the aliases on
    an instance. So `dataclasses.fields(cls)`, and `tflm.config.from_dict` with it, accept an alias (an old
    config.json loads), while `dataclasses.asdict` (a new config.json) and `dataclasses.replace` see only
    the fields proper."""

    def __init__(self, fields, aliases):
        self.all = fields
        self.proper = {name: field for name, field in fields.items() if name not in aliases}

    def __get__(self, instance, owner):
        return self.all if instance is None else self.proper


def _with_aliases(cls):
    """Makes each `cls.ALIASES` name (declared as a `None` field after its target) a property reading and
    writing its target: `cls(alias=value)`, `dataclasses.replace(options, alias=value)` and
    `options.alias = value` set the target, `options.alias` reads it."""
    for alias, target in cls.ALIASES.items():
        def write(self, value, target=target):
            if value is not None:
                setattr(self, target, value)

        setattr(cls, alias, property(lambda self, target=target: getattr(self, target), write,
                                     doc=f"Deprecated alias of `{target}`."))
    cls.__dataclass_fields__ = _Fields(cls.__dataclass_fields__, cls.ALIASES)
    return cls


@_with_aliases
@dataclasses.dataclass
class DecodingOptions:
    """How to decode: the strategy, its settings, the constraints and the length limits.

    `n_best` is a deprecated alias of `num_hypotheses` (see `ALIASES`): `DecodingOptions(n_best=2)`, an old
    config.json with `"n_best": 2`, `options.n_best` and `dataclasses.replace(options, n_best=2)` all still
    work, and `dataclasses.asdict` writes `num_hypotheses` only.
    """

    ALIASES: typing.ClassVar[dict] = {"n_best": "num_hypotheses"}

    strategy: str = "greedy"  # "greedy", "beam" or "sample"
    beam_size: int = 4
    length_penalty: float = 0.6  # GNMT alpha; 0 ranks hypotheses by plain log-probability
    num_hypotheses: int = 1  # hypotheses (beam) or samples returned per input
    temperature: float = 1.0
    top_k: int = 0  # 0: no limit
    top_p: float = 1.0
    seed: int = 0
    min_length: int = 0
    no_repeat_ngram_size: int = 0
    max_length: int = 128  # absolute limit on output tokens, EOS included
    max_length_a: float = 2.0  # and a relative one: ceil(a * source tokens) + b (off when a is 0)
    max_length_b: int = 10
    batch_size: int = 64  # inputs per decoding batch
    # Deprecated: the old name of num_hypotheses (a property, see ALIASES); when given, it wins.
    n_best: typing.Optional[int] = dataclasses.field(default=None, repr=False, compare=False)

    def validate(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"decoding.strategy={self.strategy!r} must be one of {', '.join(STRATEGIES)}.")
        if self.strategy == "beam" and not 1 <= self.num_hypotheses <= self.beam_size:
            raise ValueError(f"decoding.num_hypotheses={self.num_hypotheses} must be between 1 and "
                             f"beam_size={self.beam_size}.")
        if self.length_penalty < 0:
            raise ValueError(f"decoding.length_penalty={self.length_penalty} must be >= 0.")
        if self.temperature <= 0:
            raise ValueError(f"decoding.temperature={self.temperature} must be > 0.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"decoding.top_p={self.top_p} must be in (0, 1].")
        if self.no_repeat_ngram_size == 1 or self.no_repeat_ngram_size < 0:
            raise ValueError(f"decoding.no_repeat_ngram_size={self.no_repeat_ngram_size} must be 0 (off) or >= 2.")
        return self


def search(step_fn, state, batch_size, options, source_lengths=None, start_ids=None, forced=None,
           prefix_length=None, row_max_length=None, **overrides):
    """Decodes with the strategy of `options`; returns a `DecodeResult` of shape `(batch, n, length)`.

    Args:
        step_fn, state, batch_size: see `tflm.decoding.common`.
        options: `DecodingOptions`.
        source_lengths: optional int32 `(batch,)`, for the relative length limit.
        start_ids, forced, prefix_length: a prompt, and how much of it `state` already holds (see
            `SearchSettings`).
        row_max_length: optional int32 `(batch,)`, a limit per row below `max_length` (which then only
            sizes the buffers: a fixed size for XLA, with the limit the rows would have had otherwise).
        **overrides: tensors replacing option values (`beam_size`, `length_penalty`, `num_hypotheses` or
            its old name `n_best`, `max_length`, `temperature`, `top_k`, `top_p`, `seed`, and the constraints
            `min_length` and `no_repeat_ngram_size`, scalar int tensors: n-gram blocking on when n >= 2),
            e.g. inputs of an exported signature; `strategy` (a string) chooses another strategy.
    """
    for alias, target in DecodingOptions.ALIASES.items():
        if alias in overrides:
            overrides[target] = overrides.pop(alias)
    get = lambda name: overrides.get(name, getattr(options, name))  # noqa: E731
    max_length = get("max_length")
    limits = None
    if source_lengths is not None:
        limits = row_max_lengths(source_lengths, max_length, options.max_length_a, options.max_length_b)
    if row_max_length is not None:
        row_max_length = tf.cast(row_max_length, tf.int32)
        limits = row_max_length if limits is None else tf.minimum(limits, row_max_length)
    settings = SearchSettings(
        max_length=max_length, row_max_length=limits, min_length=get("min_length"),
        no_repeat_ngram_size=get("no_repeat_ngram_size"), start_ids=start_ids, forced=forced,
        prefix_length=prefix_length, beam_size=get("beam_size"), length_penalty=get("length_penalty"),
        num_hypotheses=get("num_hypotheses"), temperature=get("temperature"), top_k=get("top_k"),
        top_p=get("top_p"), seed=get("seed"))
    strategy = get("strategy")
    if strategy == "greedy":
        return greedy_search(step_fn, state, batch_size, settings)
    if strategy == "beam":
        return beam_search(step_fn, state, batch_size, settings)
    if strategy == "sample":
        return sample(step_fn, state, batch_size, settings)
    raise ValueError(f"Unknown decoding strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")


def rescore(model, source_ids, hypotheses, alpha=0.0):
    """The model's own score of given hypotheses: sum of token log-probabilities / length penalty.

    Args:
        model: a `Seq2Seq`.
        source_ids: int32 `(batch, source_length)`.
        hypotheses: int32 `(batch, length)`, each ending with EOS then PAD.
        alpha: the length-penalty exponent.
    Returns:
        float32 `(batch,)`.
    """
    hypotheses = tf.convert_to_tensor(hypotheses, tf.int32)
    inputs = tf.concat([tf.fill([tf.shape(hypotheses)[0], 1], BOS_ID), hypotheses[:, :-1]], axis=1)
    logits = model({"source_ids": source_ids, "target_ids": inputs})
    log_probs = tf.gather(tf.nn.log_softmax(tf.cast(logits, tf.float32)), hypotheses, batch_dims=2)
    mask = tf.not_equal(hypotheses, PAD_ID)
    total = tf.reduce_sum(tf.where(mask, log_probs, 0.0), axis=1)
    return total / length_penalty(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1), alpha)


def search_by_controls(run, beam_size, num_hypotheses, length_penalty, temperature, top_k, top_p, seed,
                       **constraints):
    """The strategy a request's controls (scalar tensors, as an exported signature takes them) ask for.

    Sampling when `temperature > 0` (`num_hypotheses` samples with `top_k`/`top_p`/`seed`), else beam search
    when `beam_size > 1` (the best `min(num_hypotheses, beam_size)`), else greedy (one hypothesis), chosen in
    the graph (`tf.case`).

    Args:
        run: `(strategy, **overrides) -> (token_ids, scores)`, e.g. a `search` over the model's state.
        **constraints: overrides passed to `run` whatever the strategy, e.g. `min_length=` and
            `no_repeat_ngram_size=` scalar tensors (see `search`).
    Returns:
        `(token_ids, scores)` of the chosen strategy.
    """
    beam_size = tf.maximum(tf.cast(beam_size, tf.int32), 1)
    count = tf.maximum(tf.cast(num_hypotheses, tf.int32), 1)
    return tf.case([
        (temperature > 0, lambda: run("sample", num_hypotheses=count, temperature=temperature, top_k=top_k,
                                      top_p=top_p, seed=seed, **constraints)),
        (beam_size > 1, lambda: run("beam", beam_size=beam_size, num_hypotheses=tf.minimum(count, beam_size),
                                    length_penalty=length_penalty, **constraints)),
    ], default=lambda: run("greedy", **constraints))
