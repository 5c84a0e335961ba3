"""`Summarizer`: an encoder-decoder with its tokenizer and decoding settings, documents in and summaries out,
all in the graph; what `tflm summarize` runs and export saves (signatures `serving_default`, `summarize`,
`tokenize`, `detokenize`, `score`)."""

import dataclasses

from tflm.tasks.predictor import Signature, control_inputs, text_input, token_signatures
from tflm.tasks.translation.translator import CONTROLS, SCORE, Translator

# the summarize signature's decoding controls: translation's, and the constraints a summary often needs
SUMMARY_CONTROLS = CONTROLS + ("min_length", "no_repeat_ngram_size")

# The signatures' interfaces, declared once without a model (the `Summarizer` and the CTranslate2 engine give
# them their functions); `score` is translation's `SCORE`.
SERVING_DEFAULT = Signature("serving_default", None, text_input("text"), rows="text", row_name="document")
SUMMARIZE = Signature("summarize", None, {**text_input("text"), **control_inputs(*SUMMARY_CONTROLS)}, rows="text",
                      row_name="document", length="max_length", warmup=True)


class Summarizer(Translator):
    """Summarizes documents: a `Translator` whose source is a document (truncated to `max_source_length`
    tokens, its first tokens kept) and whose exported `summarize` signature also takes `min_length` and
    `no_repeat_ngram_size` (repeated n-gram blocking, e.g. 3 for trigrams) as inputs.

    Example:
    >>> summarizer = Summarizer.from_run_dir("runs/debian-summaries")
    >>> summarizer.summarize(["GNU Emacs is the extensible self-documenting text editor. ..."])
    ['GNU Emacs editor']
    """

    @classmethod
    def from_run_dir(cls, run_dir, checkpoint="best", decoding=None):
        from tflm.tasks import get_task

        return get_task("summarization").load_predictor(run_dir, checkpoint, decoding=decoding)

    def signatures(self):
        return [
            dataclasses.replace(SERVING_DEFAULT, function=self.translate_batch),
            dataclasses.replace(SUMMARIZE, function=self._summarize_signature,
                                vocabulary_size=self.target_tokenizer.vocabulary_size),
            *token_signatures(self.source_tokenizer, self.target_tokenizer),
            dataclasses.replace(SCORE, function=self.score_batch),
        ]

    def _summarize_signature(self, text, min_length, no_repeat_ngram_size, **controls):
        outputs, scores = self.decode_with_controls(text, min_length=min_length,
                                                    no_repeat_ngram_size=no_repeat_ngram_size, **controls)
        return {"outputs": outputs, "scores": scores}

    def summarize(self, documents, batch_size=None):
        """A list of str -> their summaries (list of str), in order."""
        return self.translate(documents, batch_size=batch_size)
