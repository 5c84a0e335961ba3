"""`Summarizer`: an encoder-decoder with its tokenizer and decoding settings, documents in and summaries out,
all in the graph; what `tflm summarize` runs and export saves (signatures `serving_default`, `summarize`,
`tokenize`, `detokenize`, `score`)."""

from tflm.tasks.predictor import Signature, control_inputs, text_input, token_signatures
from tflm.tasks.translation.translator import CONTROLS, Translator

# the summarize signature's decoding controls: translation's, and the constraints a summary often needs
SUMMARY_CONTROLS = CONTROLS + ("min_length", "no_repeat_ngram_size")


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
        rows = dict(rows="text", row_name="document")
        return [
            Signature("serving_default", self.translate_batch, text_input("text"), **rows),
            Signature("summarize", self._summarize_signature,
                      {**text_input("text"), **control_inputs(*SUMMARY_CONTROLS)}, length="max_length",
                      vocabulary_size=self.target_tokenizer.vocabulary_size, warmup=True, **rows),
            *token_signatures(self.source_tokenizer, self.target_tokenizer),
            Signature("score", self.score_batch, {**text_input("source"), **text_input("target")}),
        ]

    def _summarize_signature(self, text, min_length, no_repeat_ngram_size, **controls):
        outputs, scores = self.decode_with_controls(text, min_length=min_length,
                                                    no_repeat_ngram_size=no_repeat_ngram_size, **controls)
        return {"outputs": outputs, "scores": scores}

    def summarize(self, documents, batch_size=None):
        """A list of str -> their summaries (list of str), in order."""
        return self.translate(documents, batch_size=batch_size)
