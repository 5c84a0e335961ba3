"""Translation runs: configuration, vocabularies, data, model, training, decoding and evaluation.

The steps are separate functions so that the CLI (`tflm train`, `tflm evaluate`, `tflm translate`) and the
recipe (`recipes/translation.py`) compose the same pieces:

    config = TranslationConfig(...)
    train_corpus = read_split(config.data, "train")
    source_tokenizer, target_tokenizer = prepare_vocabularies(config.vocabulary, run_dir, train_corpus)
    model = build_model(config, source_tokenizer, target_tokenizer)
    ...
    translator = Translator(model, source_tokenizer, target_tokenizer, config.decoding, ...)
    translator.translate(["Hello."])
"""

import dataclasses
import inspect
import json
import logging
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from tflm import config as config_lib
from tflm.data.parallel import read_parallel
from tflm.data.pipeline import Batching, num_batches, tokenize_pairs, translation_dataset
from tflm.data.registry import dataset_info, find_dataset, split_file
from tflm.decoding.common import DecodeResult, lengths_of
from tflm.decoding.search import DecodingOptions, search
from tflm.metrics.translation import corpus_scores
from tflm.models import Seq2Seq, get_model_class, preset_params
from tflm.text.tokenizers import BOS_ID, EOS_ID, PAD_ID, load_tokenizer
from tflm.text.vocab import VOCABULARY_TYPES, train_tokenizer
from tflm.training.checkpoints import ModelVariables, restore_model
from tflm.tasks import runs
from tflm.tasks.runs import (
    ModelConfig,
    TrainingConfig,
    build_optimizer,
    check_optimizer,
    count_parameters,
    load_config,
    model_dtype,
    model_params,
    resolve_run_checkpoint,
    save_averaged_checkpoint,
    start_run,
)
from tflm.training.strategies import make_strategy
from tflm.training.trainer import Trainer
from tflm.visualization import attention_heatmap

logger = logging.getLogger("tflm")


@dataclasses.dataclass
class DataConfig:
    """Where the parallel text comes from and how it is batched.

    Either `dataset` (a registry name, found in `data_dir`, `$TFLM_DATA_DIR`, the cache, or downloaded) or
    explicit `train_files`/`valid_files`/`test_files` (`[source_path, target_path]`).
    """

    dataset: Optional[str] = "tatoeba-es-en-sample"
    data_dir: Optional[str] = None
    source_language: str = "en"
    target_language: str = "es"
    train_files: Optional[list] = None
    valid_files: Optional[list] = None
    test_files: Optional[list] = None
    max_source_length: int = 100  # tokens, EOS included; longer training pairs are dropped (and counted)
    max_target_length: int = 100
    batch_tokens: Optional[int] = 4096  # token budget per batch (per step, over all replicas)
    batch_size: Optional[int] = None  # or a fixed number of sentences per batch
    max_train_pairs: Optional[int] = None  # use only the first N training pairs (quick runs)


@dataclasses.dataclass
class VocabularyConfig:
    type: str = "unigram"  # "unigram" or "bpe" (SentencePiece), or "wordpiece"
    size: int = 8000
    joint: bool = True  # one vocabulary for both languages (needed to share embeddings)


DecodingConfig = DecodingOptions  # the decoding section of a run's configuration


@dataclasses.dataclass
class TranslationConfig:
    task: str = "translation"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    vocabulary: VocabularyConfig = dataclasses.field(default_factory=VocabularyConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    decoding: DecodingOptions = dataclasses.field(default_factory=DecodingOptions)

    def validate(self):
        if self.task != "translation":
            raise config_lib.ConfigError(f"task={self.task!r}: this is a translation configuration.")
        if self.vocabulary.type not in VOCABULARY_TYPES:
            raise config_lib.ConfigError(
                f"vocabulary.type={self.vocabulary.type!r} must be one of {', '.join(VOCABULARY_TYPES)}."
            )
        if (self.data.batch_tokens is None) == (self.data.batch_size is None):
            raise config_lib.ConfigError(
                "Set exactly one of data.batch_tokens and data.batch_size (the other to null)."
            )
        if self.data.dataset is None and not self.data.train_files:
            raise config_lib.ConfigError("Set data.dataset (a registered corpus) or data.train_files.")
        if not issubclass(get_model_class(self.model.type), Seq2Seq):
            raise config_lib.ConfigError(f"model.type={self.model.type!r} is not a translation model; use "
                                         "transformer or lstm.")
        preset_params(self.model.type, self.model.preset)
        config_lib.parse_duration(self.training.time_budget)
        check_optimizer(self.training.optimizer)
        self.decoding.validate()
        return self


def load_run_config(run_dir):
    return load_config(run_dir, TranslationConfig)


# ------------------------------------------------------------------------------------------- data


def split_files(data_config, split):
    """(source_path, target_path) of a split."""
    explicit = getattr(data_config, f"{split}_files")
    if explicit:
        if len(explicit) != 2:
            raise config_lib.ConfigError(f"data.{split}_files must be [source_path, target_path]; got {explicit}.")
        return explicit[0], explicit[1]
    if data_config.dataset is None:
        raise config_lib.ConfigError(f"No data for the {split} split: set data.dataset or data.{split}_files.")
    info = dataset_info(data_config.dataset)
    languages = (data_config.source_language, data_config.target_language)
    if info.task != "translation" or set(languages) != set(info.languages):
        raise config_lib.ConfigError(
            f"Dataset {info.name!r} ({info.task}, languages {'/'.join(info.languages) or '-'}) has no "
            f"{'-'.join(languages)} translation; pick --source-lang/--target-lang from {list(info.languages)}."
        )
    directory = find_dataset(data_config.dataset, data_config.data_dir)
    return split_file(directory, split, languages[0]), split_file(directory, split, languages[1])


def read_split(data_config, split, max_pairs=None):
    """Reads one split of the configured corpus into a `ParallelCorpus`."""
    source_path, target_path = split_files(data_config, split)
    return read_parallel(source_path, target_path, max_pairs=max_pairs)


def vocabulary_paths(run_dir, tokenizer_kind_suffix):
    directory = os.path.join(run_dir, "vocab")
    return (os.path.join(directory, "source" + tokenizer_kind_suffix),
            os.path.join(directory, "target" + tokenizer_kind_suffix))


def load_vocabularies(run_dir):
    """The (source, target) tokenizers saved in a run directory."""
    for suffix in (".model", ".vocab"):
        source_path, target_path = vocabulary_paths(run_dir, suffix)
        if os.path.exists(source_path) and os.path.exists(target_path):
            source = load_tokenizer(source_path)
            target = source if _same_file(source_path, target_path) else load_tokenizer(target_path)
            return source, target
    return None


def _same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def prepare_vocabularies(vocabulary_config, run_dir, train_corpus):
    """Loads the run's vocabularies, or trains them on the training corpus and saves them in `run_dir/vocab`."""
    existing = load_vocabularies(run_dir)
    if existing:
        return existing
    if not runs.is_chief():
        return runs.wait_for_chief_vocabulary(run_dir, lambda: load_vocabularies(run_dir))
    kind, size, seed = vocabulary_config.type, vocabulary_config.size, 0
    logger.info("Training %s %s vocabulary of %d pieces", "a joint" if vocabulary_config.joint else "per-side",
                kind, size)
    if vocabulary_config.joint:
        source = target = train_tokenizer(train_corpus.source + train_corpus.target, kind, size, seed)
    else:
        source = train_tokenizer(train_corpus.source, kind, size, seed)
        target = train_tokenizer(train_corpus.target, kind, size, seed)
    source_path, target_path = vocabulary_paths(run_dir, source.file_suffix)
    runs.save_vocabulary({source_path: source, target_path: target})  # target last: a load needs both
    return source, target


# ------------------------------------------------------------------------------------------- model


def build_model(config, source_tokenizer, target_tokenizer):
    """The model of `config.model`, sized for the tokenizers' vocabularies, built."""
    cls = get_model_class(config.model.type)
    accepted = inspect.signature(cls.__init__).parameters
    params = model_params(config.model, accepted, ("self", "kwargs", "source_vocabulary_size",
                                                   "target_vocabulary_size"))
    if "share_embeddings" in accepted:
        params.setdefault("share_embeddings", source_tokenizer is target_tokenizer)
    dtype = model_dtype(config.training.mixed_precision)
    model = cls(source_tokenizer.vocabulary_size, target_tokenizer.vocabulary_size, dtype=dtype, **params)
    model.build()
    return model


# ------------------------------------------------------------------------------------------- decoding


class Translator(tf.Module):
    """A model with its tokenizers and decoding settings: strings in, strings out, all in the graph.

    `translate_batch` is a `tf.function` over a string vector; it is what `tflm translate` runs and what
    export saves. Its variables are tracked explicitly (see `ModelVariables`).

    Args:
        model: a `Seq2Seq` model.
        source_tokenizer, target_tokenizer: `tflm.text.Tokenizer`s.
        decoding: a `DecodingConfig`.
        max_source_length: int. Longer inputs are truncated (EOS included).
    Example:
    >>> translator = Translator.from_run_dir("runs/quickstart")
    >>> translator.translate(["I love you."])
    ['Te quiero.']
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, decoding=None, max_source_length=256):
        super().__init__()
        self.model = model
        self.model_variables = ModelVariables(model)
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.decoding = decoding or DecodingConfig()
        self.max_source_length = max_source_length

    @classmethod
    def from_run_dir(cls, run_dir, checkpoint="best", decoding=None):
        """Loads a trained run: its configuration, vocabularies and a checkpoint (`"best"`, `"last"`, or a path)."""
        config = load_run_config(run_dir)
        tokenizers = load_vocabularies(run_dir)
        if tokenizers is None:
            raise FileNotFoundError(f"{run_dir}/vocab: no vocabulary files; was this run trained?")
        model = build_model(config, *tokenizers)
        restore_model(model, resolve_run_checkpoint(run_dir, checkpoint))
        return cls(model, *tokenizers, decoding=decoding or config.decoding,
                   max_source_length=config.data.max_source_length)

    def encode_source(self, text):
        """Source ids `(batch, length)`: pieces (truncated) then EOS, PAD-padded."""
        pieces = self.source_tokenizer.tokenize(text)[:, : self.max_source_length - 1]
        eos = tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], EOS_ID))
        return tf.concat([pieces, eos], axis=1).to_tensor(PAD_ID)

    def decode_ids(self, source_ids, **overrides):
        """Decodes padded source ids with the translator's options; returns a `DecodeResult`.

        `overrides` replace decoding options with tensors (see `tflm.decoding.search`).
        """
        batch_size = tf.shape(source_ids)[0]
        source_lengths = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD_ID), tf.int32), axis=1)
        max_length = overrides.pop("max_length", self.buffer_length(source_lengths))
        state = self.model.initial_state(self.model.encode(source_ids), max_length)
        return search(self.model.decode_step, state, batch_size, self.decoding, source_lengths,
                      max_length=max_length, **overrides)

    def buffer_length(self, source_lengths):
        """The decoding buffers' length for a batch: the absolute limit, or less when the relative limit
        (`max_length_a * source + b`) of the batch's longest source is smaller. Caches and the attention over
        them scale with it, so short sentences decode fast."""
        options = self.decoding
        if not options.max_length_a:
            return options.max_length
        relative = tf.cast(tf.math.ceil(options.max_length_a * tf.cast(tf.reduce_max(source_lengths), tf.float32)),
                           tf.int32) + int(options.max_length_b or 0)
        return tf.clip_by_value(relative, 1, options.max_length)

    def _texts(self, text, result):
        """Detokenized hypotheses `(batch, n)`; an empty input gives empty outputs with score 0."""
        n = tf.shape(result.token_ids)[1]
        flat = tf.reshape(result.token_ids, [-1, tf.shape(result.token_ids)[2]])
        outputs = tf.reshape(self.target_tokenizer.detokenize(flat), [-1, n])
        empty = tf.equal(tf.strings.length(tf.strings.strip(text)), 0)[:, tf.newaxis]
        return tf.where(empty, "", outputs), tf.where(empty, 0.0, result.scores)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate_batch(self, text):
        """string `(batch,)` -> `{"outputs": string (batch,), "scores": float32 (batch,)}`: the best hypothesis."""
        outputs, scores = self._texts(text, self.decode_ids(self.encode_source(text)))
        return {"outputs": outputs[:, 0], "scores": scores[:, 0]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate_batch_n_best(self, text):
        """string `(batch,)` -> `{"outputs": string (batch, n), "scores": float32 (batch, n)}`, best first."""
        outputs, scores = self._texts(text, self.decode_ids(self.encode_source(text)))
        return {"outputs": outputs, "scores": scores}

    def attention(self, sentence):
        """Translates one sentence and returns the model's cross-attention over it.

        Returns:
            `(weights, source_pieces, target_pieces, translation)`: float array `(target, source)` (the
            row of each produced piece, EOS included, over the source pieces and EOS), the piece strings
            and the detokenized translation.
        """
        source_ids = self.encode_source(tf.constant([sentence]))
        result = self.decode_ids(source_ids)
        length = int(result.lengths[0, 0])
        hypothesis = result.token_ids[0, 0, :length]
        decoder_inputs = tf.concat([[BOS_ID], hypothesis[:-1]], axis=0)[tf.newaxis]
        weights = np.asarray(self.model.cross_attention(source_ids, decoder_inputs))[0]
        pieces = lambda tokenizer, ids: [p.decode("utf-8") for p in np.asarray(tokenizer.id_to_token(ids))]  # noqa
        translation = np.asarray(self.target_tokenizer.detokenize(hypothesis[tf.newaxis]))[0].decode("utf-8")
        return weights, pieces(self.source_tokenizer, source_ids[0]), pieces(self.target_tokenizer, hypothesis), \
            translation

    def decode_with_controls(self, text, beam_size, num_hypotheses, max_length, length_penalty, temperature,
                             top_k, top_p, seed):
        """Decodes with per-request settings (scalar tensors), as the exported `translate` signature does.

        Sampling when `temperature > 0` (`num_hypotheses` samples, `top_k`/`top_p`/`seed`), else beam search
        when `beam_size > 1` (the best `min(num_hypotheses, beam_size)`), else greedy (one hypothesis).

        Returns:
            `(outputs, scores)`: string `(batch, n)` and float32 `(batch, n)`, best first.
        """
        source_ids = self.encode_source(text)
        batch_size = tf.shape(source_ids)[0]
        source_lengths = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD_ID), tf.int32), axis=1)
        max_length = tf.clip_by_value(tf.minimum(tf.cast(max_length, tf.int32), self.buffer_length(source_lengths)),
                                      1, self.max_target_positions())
        num_hypotheses = tf.maximum(tf.cast(num_hypotheses, tf.int32), 1)
        beam_size = tf.maximum(tf.cast(beam_size, tf.int32), 1)
        state = self.model.initial_state(self.model.encode(source_ids), max_length)

        def run(strategy, **settings):
            result = search(self.model.decode_step, state, batch_size, self.decoding, source_lengths,
                            strategy=strategy, max_length=max_length, **settings)
            return result.token_ids, result.scores

        token_ids, scores = tf.case([
            (temperature > 0, lambda: run("sample", n_best=num_hypotheses, temperature=temperature, top_k=top_k,
                                          top_p=top_p, seed=seed)),
            (beam_size > 1, lambda: run("beam", beam_size=beam_size, n_best=tf.minimum(num_hypotheses, beam_size),
                                        length_penalty=length_penalty)),
        ], default=lambda: run("greedy"))
        return self._texts(text, DecodeResult(token_ids, lengths_of(token_ids), scores))

    def max_target_positions(self):
        """The longest output the model can produce (learned positions have a fixed table)."""
        if getattr(self.model, "position_embedding", None) == "learned":
            return int(self.model.max_sequence_length)
        return 100_000

    def score_batch(self, source, target):
        """The model's log-probability of each target given its source (EOS included).

        Returns:
            `{"log_prob": float32 (batch,), "tokens": int32 (batch,)}`.
        """
        source_ids = self.encode_source(source)
        pieces = self.target_tokenizer.tokenize(target)[:, : self.max_target_positions() - 1]
        eos = tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], EOS_ID))
        bos = tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], BOS_ID))
        labels = tf.concat([pieces, eos], axis=1).to_tensor(PAD_ID)
        inputs = tf.concat([bos, pieces], axis=1).to_tensor(PAD_ID)
        logits = self.model({"source_ids": source_ids, "target_ids": inputs})
        log_probs = tf.gather(tf.nn.log_softmax(tf.cast(logits, tf.float32)), labels, batch_dims=2)
        mask = tf.not_equal(labels, PAD_ID)
        return {"log_prob": tf.reduce_sum(tf.where(mask, log_probs, 0.0), axis=1),
                "tokens": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)}

    def _batches(self, sentences, batch_size, function):
        """Runs `function` over batches of sentences of similar length; yields (indices, result)."""
        batch_size = batch_size or self.decoding.batch_size
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start: start + batch_size]
            yield chunk, function(tf.constant([sentences[i] for i in chunk], dtype=tf.string))

    def translate(self, sentences, batch_size=None):
        """Translates a list of str (any size) to a list of str; order is kept."""
        outputs = [None] * len(sentences)
        for chunk, result in self._batches(sentences, batch_size, self.translate_batch):
            for i, text in zip(chunk, np.asarray(result["outputs"])):
                outputs[i] = text.decode("utf-8")
        return outputs

    def translate_n_best(self, sentences, batch_size=None):
        """Translates a list of str to, per sentence, a list of `(translation, score)`, best first."""
        outputs = [None] * len(sentences)
        for chunk, result in self._batches(sentences, batch_size, self.translate_batch_n_best):
            for i, texts, scores in zip(chunk, np.asarray(result["outputs"]), np.asarray(result["scores"])):
                outputs[i] = [(t.decode("utf-8"), float(s)) for t, s in zip(texts, scores)]
        return outputs


def average_run_checkpoints(run_dir, count=5):
    """Averages the last `count` training checkpoints of a run into `checkpoints/averaged/`; returns its path."""
    config = load_run_config(run_dir)
    return save_averaged_checkpoint(run_dir, build_model(config, *load_vocabularies(run_dir)), count)


# ------------------------------------------------------------------------------------------- training


@dataclasses.dataclass
class PreparedData:
    """Everything training needs from the corpus: tokenizers, tokenized splits, batching."""

    source_tokenizer: object
    target_tokenizer: object
    train_pairs: object
    valid_pairs: object
    valid_corpus: object
    batching: Batching

    def train_dataset(self, epoch, seed=0):
        return translation_dataset(self.train_pairs, self.batching, seed=seed, epoch=epoch)

    def valid_dataset(self):
        return translation_dataset(self.valid_pairs, self.batching, shuffle=False)

    def steps_per_epoch(self):
        return num_batches(self.train_pairs, self.batching)


def prepare_data(config, run_dir):
    """Reads the train and valid splits, builds (or loads) the vocabularies, tokenizes and filters."""
    train_corpus = read_split(config.data, "train", max_pairs=config.data.max_train_pairs)
    source_tokenizer, target_tokenizer = prepare_vocabularies(config.vocabulary, run_dir, train_corpus)
    limits = dict(max_source_length=config.data.max_source_length, max_target_length=config.data.max_target_length)
    train_pairs = tokenize_pairs(train_corpus, source_tokenizer, target_tokenizer, **limits)
    if not len(train_pairs):
        raise ValueError("No training pairs are left after filtering; check the data and the length limits.")
    valid_corpus = read_split(config.data, "valid")
    valid_pairs = tokenize_pairs(valid_corpus, source_tokenizer, target_tokenizer, **limits)
    batching = Batching(batch_tokens=config.data.batch_tokens, batch_size=config.data.batch_size,
                        fixed_shapes=config.training.jit_compile,
                        bucket_growth=1.5 if config.training.jit_compile else 1.2)
    return PreparedData(source_tokenizer, target_tokenizer, train_pairs, valid_pairs, valid_corpus, batching)


def build_trainer(config, run_dir, data, strategy=None, verbose=True):
    """The model, optimizer and `Trainer` of a run, created under the configured distribution strategy."""
    training = config.training
    strategy = strategy or make_strategy(training.strategy, training.devices)
    total_steps = training.max_steps or (training.epochs or 0) * data.steps_per_epoch() or None
    with strategy.scope():
        model = build_model(config, data.source_tokenizer, data.target_tokenizer)
        optimizer = build_optimizer(training, total_steps)
    logger.info("Model %s: %d parameters; %d training pairs, %d batches per epoch",
                config.model.type, count_parameters(model), len(data.train_pairs), data.steps_per_epoch())
    return Trainer(
        model, optimizer, run_dir, strategy=strategy, label_smoothing=training.label_smoothing,
        clip_norm=training.clip_norm, keep_checkpoints=training.keep_checkpoints,
        checkpoint_every_steps=training.checkpoint_every_steps,
        checkpoint_every_seconds=training.checkpoint_every_seconds,
        log_every_steps=training.log_every_steps, jit_compile=training.jit_compile, verbose=verbose,
    )


def train(config, run_dir, verbose=True):
    """Trains (or resumes) a translation run in `run_dir`; returns the `TrainResult`.

    Steps: save the configuration, read and tokenize the data (training the vocabularies on first use),
    build the model and optimizer under the distribution strategy, and train with checkpoints,
    validation and sample translations after each epoch.
    """
    config = start_run(config, run_dir)
    # before any TensorFlow op runs: MultiWorkerMirroredStrategy configures collectives at program start
    strategy = make_strategy(config.training.strategy, config.training.devices)
    data = prepare_data(config, run_dir)
    trainer = build_trainer(config, run_dir, data, strategy=strategy, verbose=verbose)
    training = config.training
    samples = SampleTranslations.from_corpus(trainer.model, data, config, training.samples)
    return trainer.fit(
        lambda epoch: data.train_dataset(epoch, seed=training.seed),
        epochs=training.epochs,
        max_steps=training.max_steps,
        time_budget=config_lib.parse_duration(training.time_budget),
        valid_data=data.valid_dataset(),
        steps_per_epoch=data.steps_per_epoch(),
        on_epoch_end=samples,
    )


class SampleTranslations:
    """After each epoch, translates a few validation sentences into the log and TensorBoard (as text), and
    draws the cross-attention heatmaps of the first `heatmaps` of them as TensorBoard images."""

    def __init__(self, translator, sources, references, heatmaps=2):
        self.translator = translator
        self.sources = sources
        self.references = references
        self.heatmaps = heatmaps

    @classmethod
    def from_corpus(cls, model, data, config, count):
        """`count` validation sentences spread over the whole validation set (None when count is 0)."""
        if not count:
            return None
        corpus = data.valid_corpus
        picks = sorted({round(i * (len(corpus) - 1) / max(count - 1, 1)) for i in range(count)}) if len(corpus) else []
        translator = Translator(model, data.source_tokenizer, data.target_tokenizer, config.decoding,
                                config.data.max_source_length)
        return cls(translator, [corpus.source[i] for i in picks], [corpus.target[i] for i in picks])

    def __call__(self, trainer, epoch, valid_loss):
        if not self.sources:
            return
        hypotheses = self.translator.translate(self.sources)
        rows = ["| source | reference | translation |", "|---|---|---|"]
        for source, reference, hypothesis in zip(self.sources, self.references, hypotheses):
            logger.info("sample: %s => %s (reference: %s)", source, hypothesis, reference)
            rows.append(f"| {_cell(source)} | {_cell(reference)} | {_cell(hypothesis)} |")
        with trainer.writers["valid"].as_default(step=trainer.step):
            tf.summary.text("sample_translations", "\n".join(rows))
            for index, source in enumerate(self.sources[: self.heatmaps]):
                image = attention_heatmap(*self.translator.attention(source)[:3])
                tf.summary.image(f"attention/{index}", np.asarray(image)[np.newaxis])


def _cell(text):
    return text.replace("|", "\\|")


# ------------------------------------------------------------------------------------------- evaluation


def evaluate(run_dir, split="test", checkpoint="best", decoding=None, max_pairs=None):
    """Translates a split of the run's corpus and scores it with sacreBLEU (BLEU, chrF).

    Writes `eval/<split>.<checkpoint>.<strategy>.hyp` (one translation per line) and `.json` in the run
    directory (strategy: greedy, beam4, ...), and returns the scores with decoding time and speed.
    """
    config = load_run_config(run_dir)
    translator = Translator.from_run_dir(run_dir, checkpoint, decoding=decoding)
    corpus = read_split(config.data, split, max_pairs=max_pairs)
    translator.translate(corpus.source[: translator.decoding.batch_size])  # trace the graph before timing
    started = time.monotonic()
    hypotheses = translator.translate(corpus.source)
    seconds = time.monotonic() - started
    scores = corpus_scores(hypotheses, corpus.target)
    scores.update({
        "split": split,
        "checkpoint": checkpoint,
        "decode_seconds": round(seconds, 2),
        "sentences_per_second": round(len(hypotheses) / max(seconds, 1e-9), 1),
        "decoding": dataclasses.asdict(translator.decoding),
    })
    directory = os.path.join(run_dir, "eval")
    os.makedirs(directory, exist_ok=True)
    options = translator.decoding
    strategy = {"greedy": "greedy", "beam": f"beam{options.beam_size}", "sample": "sample"}[options.strategy]
    name = f"{split}.{os.path.basename(str(checkpoint))}.{strategy}"
    with open(os.path.join(directory, name + ".hyp"), "w", encoding="utf-8") as f:
        f.writelines(h + "\n" for h in hypotheses)
    with open(os.path.join(directory, name + ".json"), "w") as f:
        json.dump(scores, f, indent=1)
    logger.info("%s %s: BLEU %.2f, chrF %.2f (%d sentences, %.1f sentences/s)", run_dir, split, scores["bleu"],
                scores["chrf"], len(hypotheses), scores["sentences_per_second"])
    return scores
