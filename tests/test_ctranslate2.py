"""CTranslate2 conversion: converted Transformer encoder-decoders and GPTs decode greedily to tflm's own
pieces with tflm's scores; what CTranslate2 cannot run is refused with a clear error."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

ctranslate2 = pytest.importorskip("ctranslate2")

from tflm.data import read_parallel  # noqa: E402
from tflm.decoding import DecodingOptions  # noqa: E402
from tflm.engines.ctranslate2 import (  # noqa: E402
    METADATA_FILE,
    convert_model,
    convert_run,
    model_spec,
    sinusoidal_table,
)
from tflm.models import GPT, ComposedSeq2Seq, LSTMAttentionSeq2Seq, TransformerSeq2Seq, TransformerXL  # noqa: E402
from tflm.tasks import language_modeling  # noqa: E402
from tflm.tasks.translation import Translator  # noqa: E402
from tflm.text import CharacterTokenizer, load_tokenizer  # noqa: E402

from conftest import SAMPLE_DIR  # noqa: E402

MAX_LENGTH = 24
# tflm never generates PAD or BOS (it bans them but scores with the full softmax); CTranslate2's suppression
# renormalizes the remaining tokens, so scores are compared on unsuppressed decoding and by teacher forcing.
SUPPRESS = [["<pad>"], ["<s>"]]
# The largest difference of a score (a sum of log-probabilities over up to 24 tokens) between tflm and
# CTranslate2 in float32, as the README states it; the differences measured are about 1e-5.
SCORE_TOLERANCE = 1e-4
TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"


@pytest.fixture(scope="module")
def sentences():
    corpus = read_parallel(os.path.join(SAMPLE_DIR, "test.en.gz"), os.path.join(SAMPLE_DIR, "test.es.gz"))
    return corpus.source[:8], corpus.target[:8]


def pieces_of(tokenizer, texts):
    return [[tokenizer.pieces[i] for i in np.asarray(tokenizer.tokenize(text))] for text in texts]


def tflm_greedy(translator, sources):
    """tflm's greedy pieces (EOS included when produced) and scores (sum of log-probabilities, EOS included)."""
    result = translator.decode_ids(translator.encode_source(tf.constant(sources)))
    pieces = translator.target_tokenizer.pieces
    hypotheses = [[pieces[i] for i in row if i != 0] for row in np.asarray(result.token_ids)[:, 0]]
    return hypotheses, np.asarray(result.scores)[:, 0]


def ct2_greedy(model, source_pieces, suppress=True):
    results = model.translate_batch(
        source_pieces, beam_size=1, max_decoding_length=MAX_LENGTH, min_decoding_length=0, length_penalty=0,
        return_end_token=True, return_scores=True, suppress_sequences=SUPPRESS if suppress else None)
    return [r.hypotheses[0] for r in results], np.array([r.scores[0] for r in results])


def assert_translation_parity(translator, path, sources, targets):
    """Greedy pieces equal, greedy and teacher-forced scores agree; returns the largest score differences."""
    tokenizer = translator.source_tokenizer
    model = ctranslate2.Translator(path, device="cpu")
    source_pieces = pieces_of(tokenizer, sources)
    expected, expected_scores = tflm_greedy(translator, sources)
    hypotheses, _ = ct2_greedy(model, source_pieces)
    assert hypotheses == expected
    # tflm's greedy scores are CTranslate2's log-probabilities of the same pieces (score_batch appends EOS: it
    # is left out where the hypothesis reached the length limit without one)
    ended = [h[-1:] == ["</s>"] for h in expected]
    scored = model.score_batch(source_pieces, [h[:-1] if end else h for h, end in zip(expected, ended)])
    greedy_ct2 = np.array([sum(r.log_probs if end else r.log_probs[:-1]) for r, end in zip(scored, ended)])
    np.testing.assert_allclose(greedy_ct2, expected_scores, rtol=0, atol=SCORE_TOLERANCE)
    # and the scores of CTranslate2's own greedy search where it needs no suppression (length_penalty=0: the
    # sum of the log-probabilities, EOS included). Without suppression CTranslate2 may pick PAD or BOS where
    # tflm never does: a row then differs from tflm's from that token on, and only there.
    unsuppressed, scores = ct2_greedy(model, source_pieces, suppress=False)
    same = np.array([u == e for u, e in zip(unsuppressed, expected)])
    for u, e in zip(unsuppressed, expected):
        banned = [i for i, piece in enumerate(u) if [piece] in SUPPRESS]
        assert u == e or (banned and u[: banned[0]] == e[: banned[0]]), (u, e)
    assert same.sum() >= 3, same
    np.testing.assert_allclose(scores[same], expected_scores[same], rtol=0, atol=SCORE_TOLERANCE)
    # teacher forcing: CTranslate2's per-token log-probabilities of the references (EOS appended) sum to tflm's
    forced = translator.score_batch(tf.constant(sources), tf.constant(targets))["log_prob"].numpy()
    scored = model.score_batch(source_pieces, pieces_of(translator.target_tokenizer, targets))
    forced_ct2 = np.array([sum(r.log_probs) for r in scored])
    np.testing.assert_allclose(forced_ct2, forced, rtol=0, atol=SCORE_TOLERANCE)
    differences = (np.abs(greedy_ct2 - expected_scores).max(), np.abs(scores[same] - expected_scores[same]).max(),
                   np.abs(forced_ct2 - forced).max())
    print("parity: greedy pieces equal; |score difference| greedy %.2e, search %.2e, teacher-forced %.2e "
          "(%d/%d without suppression)" % (*differences, sum(same), len(same)))


def test_a_trained_run_converts_and_decodes_as_tflm_does(trained_run, sentences, tmp_path):
    sources, targets = sentences
    path = convert_run(trained_run, str(tmp_path / "ct2"))
    assert {"model.bin", "config.json", "shared_vocabulary.json", "source.model", "target.model",
            METADATA_FILE} <= set(os.listdir(path))
    metadata = json.load(open(os.path.join(path, METADATA_FILE)))
    assert metadata["model_type"] == "transformer" and metadata["checkpoint"] == "best"
    assert metadata["tokenizer_files"] == {"source": "source.model", "target": "target.model"}
    assert metadata["quantization"] is None and metadata["source_run"] == os.path.abspath(trained_run)
    config = json.load(open(os.path.join(path, "config.json")))
    assert config["decoder_start_token"] == "<s>" and config["add_source_eos"] is True
    assert config["layer_norm_epsilon"] == 1e-5

    translator = Translator.from_run_dir(trained_run, decoding=DecodingOptions(
        strategy="greedy", max_length=MAX_LENGTH, max_length_a=0.0))
    assert_translation_parity(translator, path, sources, targets)
    # a client tokenizes with the SentencePiece model written next to the CTranslate2 model
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=os.path.join(path, "source.model"))
    assert [processor.encode(s, out_type=str) for s in sources] == pieces_of(translator.source_tokenizer, sources)


@pytest.mark.parametrize("make", [
    lambda v: TransformerSeq2Seq(v, v, hidden_dim=32, intermediate_dim=64, num_heads=4, num_encoder_layers=2,
                                 num_decoder_layers=2, dropout=0.0),
    lambda v: TransformerSeq2Seq(v, v, hidden_dim=32, intermediate_dim=64, num_heads=2, num_encoder_layers=1,
                                 num_decoder_layers=2, dropout=0.0, normalize_first=False,
                                 position_embedding="learned", max_sequence_length=64, tie_output_embeddings=False),
    lambda v: TransformerSeq2Seq(v, v, hidden_dim=32, intermediate_dim=64, num_heads=4, dropout=0.0,
                                 share_embeddings=True),
    lambda v: ComposedSeq2Seq(v, v, hidden_dim=32, intermediate_dim=48, num_heads=2, num_encoder_layers=2,
                              num_decoder_layers=1, dropout=0.0, decoder_params={"num_heads": 4}),
], ids=["pre-ln-sinusoidal", "post-ln-learned-untied", "shared-embeddings", "composed-seq2seq"])
def test_random_transformers_decode_as_tflm_does(make, trained_run, sentences, tmp_path):
    sources, targets = sentences
    tokenizer = load_tokenizer(os.path.join(trained_run, "vocab", "source.model"))
    keras.utils.set_random_seed(1)
    model = make(tokenizer.vocabulary_size)
    model.build()
    path = convert_model(model, (tokenizer, tokenizer), str(tmp_path / "ct2"))
    translator = Translator(model, tokenizer, tokenizer, decoding=DecodingOptions(
        strategy="greedy", max_length=MAX_LENGTH, max_length_a=0.0))
    hypotheses, _ = tflm_greedy(translator, sources)
    assert len({tuple(h) for h in hypotheses}) > 1  # not degenerate: the check compares distinct outputs
    assert_translation_parity(translator, path, sources, targets)


def test_the_sinusoidal_table_is_keras_hubs():
    from keras_hub.layers import SinePositionEncoding

    expected = SinePositionEncoding()(np.zeros((1, 50, 16), "float32"))[0]
    np.testing.assert_allclose(sinusoidal_table(50, 16), expected, atol=1e-5)


def test_quantized_conversions_load_and_translate(trained_run, sentences, tmp_path):
    sources = sentences[0]
    tokenizer = load_tokenizer(os.path.join(trained_run, "vocab", "source.model"))
    float32 = convert_run(trained_run, str(tmp_path / "float32"))
    full = os.path.getsize(os.path.join(float32, "model.bin"))
    with pytest.raises(FileExistsError):
        convert_run(trained_run, float32)
    assert convert_run(trained_run, float32, force=True) == float32
    # or quantized when loaded
    loaded = ctranslate2.Translator(float32, device="cpu", compute_type="int8")
    assert loaded.compute_type.startswith("int8")
    assert loaded.translate_batch(pieces_of(tokenizer, sources[:2]), beam_size=1, max_decoding_length=8)
    for quantization in ("int8", "int8_float32", "float16", "bfloat16"):
        path = convert_run(trained_run, str(tmp_path / quantization), quantization=quantization)
        assert json.load(open(os.path.join(path, METADATA_FILE)))["quantization"] == quantization
        assert os.path.getsize(os.path.join(path, "model.bin")) < 0.6 * full
        results = ctranslate2.Translator(path, device="cpu").translate_batch(pieces_of(tokenizer, sources),
                                                                             beam_size=1, max_decoding_length=8)
        assert len(results) == len(sources) and all(r.hypotheses[0] for r in results)
    with pytest.raises(ValueError, match="quantization"):
        convert_run(trained_run, str(tmp_path / "bad"), quantization="int4")


def test_models_ctranslate2_cannot_run_are_refused(trained_run, tmp_path):
    # an LSTM run: refused from its configuration, before its checkpoint is read
    run_dir = tmp_path / "lstm-run"
    shutil.copytree(os.path.join(trained_run, "vocab"), run_dir / "vocab")
    config = json.load(open(os.path.join(trained_run, "config.json")))
    config["model"] = {"type": "lstm", "preset": "tiny", "params": {}}
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"'lstm' model.*supports Transformer encoder-decoders"):
        convert_run(str(run_dir), str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")

    tokenizer = load_tokenizer(os.path.join(trained_run, "vocab", "source.model"))
    v = tokenizer.vocabulary_size
    refused = {
        "'lstm' model": LSTMAttentionSeq2Seq(v, v, embedding_dim=16, hidden_dim=16, num_encoder_layers=1,
                                             num_decoder_layers=1),
        "encoder is a RNNEncoder": ComposedSeq2Seq(v, v, encoder="lstm", hidden_dim=16, intermediate_dim=32,
                                                   num_heads=2),
        "copy attention": TransformerSeq2Seq(v, v, hidden_dim=16, intermediate_dim=32, num_heads=2,
                                             copy_attention=True),
    }
    for message, model in refused.items():
        model.build()
        with pytest.raises(ValueError, match=message):
            model_spec(model, (tokenizer, tokenizer))
    characters = CharacterTokenizer(sorted(set(TEXT)))
    xl = TransformerXL(characters.vocabulary_size, hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=1)
    xl.build()
    with pytest.raises(ValueError, match="'transformer_xl' model.*GPT language models"):
        model_spec(xl, characters)


def assert_generation_parity(generator, path, prompts, max_new_tokens):
    tokenizer = generator.tokenizer
    model = ctranslate2.Generator(path, device="cpu")
    separator = tokenizer.pieces[generator.separator]
    max_diff = 0.0
    for prompt in prompts:  # one at a time: tflm's limit counts from the longest prompt of a batch
        result = generator.generate_ids(tf.constant([prompt]))
        expected = [tokenizer.pieces[i] for i in np.asarray(result.token_ids)[0, 0] if i != 0]
        options = dict(beam_size=1, max_length=max_new_tokens, min_length=0, include_prompt_in_result=False,
                       return_end_token=True, return_scores=True, length_penalty=0)
        start = pieces_of(tokenizer, [prompt])
        suppressed = model.generate_batch(start, suppress_sequences=SUPPRESS, **options)[0]
        assert suppressed.sequences[0] == expected, prompt
        # the score of the continuation: CTranslate2's log-probabilities of the same tokens after the prompt (a
        # Generator scores the tokens it is given, EOS included when there is one, and appends nothing)
        score = float(np.asarray(result.scores)[0, 0])
        logged = model.score_batch([start[0] + expected])[0].log_probs
        own = sum(logged[len(start[0]) - 1:])
        np.testing.assert_allclose(own, score, rtol=0, atol=SCORE_TOLERANCE)
        max_diff = max(max_diff, abs(own - score))
        plain = model.generate_batch(start, **options)[0]
        if plain.sequences[0] == expected:  # without suppression: its own scores
            np.testing.assert_allclose(plain.scores[0], score, rtol=0, atol=SCORE_TOLERANCE)
            max_diff = max(max_diff, abs(plain.scores[0] - score))
    texts = [p + " the" for p in prompts]
    forced = generator.score_batch(tf.constant(texts))["log_prob"].numpy()
    scored = model.score_batch([[separator] + p for p in pieces_of(tokenizer, texts)])
    forced_ct2 = np.array([sum(r.log_probs) for r in scored])
    np.testing.assert_allclose(forced_ct2, forced, rtol=0, atol=SCORE_TOLERANCE)
    print("parity: generated tokens equal; |score difference| generation %.2e, teacher-forced %.2e"
          % (max_diff, np.abs(forced_ct2 - forced).max()))


@pytest.mark.parametrize("position_embedding", ["learned", "rotary"])
def test_random_gpts_generate_as_tflm_does(position_embedding, tmp_path):
    tokenizer = CharacterTokenizer(sorted(set(TEXT)))
    keras.utils.set_random_seed(2)
    model = GPT(tokenizer.vocabulary_size, hidden_dim=32, intermediate_dim=64, num_heads=4, num_layers=2,
                dropout=0.0, max_sequence_length=64, position_embedding=position_embedding)
    model.build()
    path = convert_model(model, tokenizer, str(tmp_path / "ct2"))
    generator = language_modeling.Generator(model, tokenizer, DecodingOptions(strategy="greedy", max_length=20,
                                                                              max_length_a=0.0))
    assert_generation_parity(generator, path, ["ROMEO:", "But, soft", "It is", "w", "light through"], 20)


def test_a_trained_gpt_run_converts_and_generates_as_tflm_does(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT * 10)
    config = language_modeling.LanguageModelConfig()
    config.data.dataset = None
    config.data.train_file = config.data.valid_file = config.data.test_file = str(text_file)
    config.data.sequence_length, config.data.batch_size = 32, 4
    config.model.preset = "tiny"
    config.model.params = {"dropout": 0.0, "max_sequence_length": 64}
    config.training = language_modeling.TrainingConfig(epochs=None, max_steps=20, learning_rate=3e-3,
                                                       label_smoothing=0.0, samples=0)
    run_dir = str(tmp_path / "run")
    language_modeling.train(config, run_dir, verbose=False)
    path = convert_run(run_dir, str(tmp_path / "ct2"))
    metadata = json.load(open(os.path.join(path, METADATA_FILE)))
    assert metadata["model_type"] == "gpt" and metadata["ctranslate2_class"] == "Generator"
    assert metadata["tokenizer_files"] == {"tokenizer": "tokenizer.chars"}
    assert os.path.exists(os.path.join(path, "tokenizer.chars"))
    generator = language_modeling.Generator.from_run_dir(run_dir, decoding=DecodingOptions(
        strategy="greedy", max_length=16, max_length_a=0.0))
    assert_generation_parity(generator, path, ["ROMEO:", "But, soft", "It is"], 16)


def test_tflm_export_format_ctranslate2_writes_a_versioned_model_and_refuses_what_it_cannot_hold(trained_run, tmp_path):
    from click.testing import CliRunner

    from tflm.cli import main

    base = tmp_path / "models"
    result = CliRunner().invoke(main, ["export", trained_run, "--name", "ct2", "--base-dir", str(base), "--format",
                                       "ctranslate2", "--quantization", "int8"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    path = result.output.strip().splitlines()[-1]
    assert path == str(base / "ct2" / "1") and os.path.exists(os.path.join(path, "model.bin"))
    assert json.load(open(os.path.join(path, METADATA_FILE)))["quantization"] == "int8"
    ctranslate2.Translator(path, device="cpu")  # loads
    again = CliRunner().invoke(main, ["export", trained_run, "--name", "ct2", "--base-dir", str(base), "--format",
                                      "ctranslate2", "--beam-size", "3", "--max-beam-size", "5"],
                               catch_exceptions=False)
    assert again.exit_code == 0 and again.output.strip().splitlines()[-1] == str(base / "ct2" / "2")
    metadata = json.load(open(base / "ct2" / "2" / METADATA_FILE))  # its decoding and limits, as a SavedModel has
    assert (metadata["decoding"]["strategy"], metadata["decoding"]["beam_size"]) == ("beam", 3)
    assert metadata["limits"]["max_beam_size"] == 5
    refused = CliRunner().invoke(main, ["export", trained_run, "--name", "x", "--base-dir", str(base),
                                        "--quantization", "int8"])
    assert refused.exit_code == 2 and "--format ctranslate2" in refused.output
