"""`SampleOutputs`: what an encoder-decoder makes of a few validation inputs after each epoch, in the log and
in TensorBoard (a Markdown table, and cross-attention heatmaps), written through the trainer's
`write_text`/`write_image`."""

import logging

from tflm.visualization import attention_heatmap

logger = logging.getLogger("tflm")


class SampleOutputs:
    """An `on_epoch_end` callback `(trainer, epoch, valid_loss)`: decodes `sources` with `predictor` (a
    `Translator` or one of its subclasses), logs each output next to its reference, writes them as a table
    under `tag` and the cross-attention heatmaps of the first `heatmaps` sources as `attention/<i>`.

    Args:
        predictor: a `Translator` (or `Summarizer`) over the model being trained.
        sources, references: lists of str.
        heatmaps: int. Attention heatmaps to draw.
        tag: str. The TensorBoard tag of the table (e.g. "sample_translations").
        header: str. The table's header row, e.g. "| source | reference | translation |".
    Example:
    >>> samples = SampleOutputs.from_corpus(translator, data.valid_corpus, 4, tag="sample_translations")
    >>> trainer.fit(train_data, epochs=10, on_epoch_end=samples)
    """

    def __init__(self, predictor, sources, references, heatmaps=2, tag="sample_translations",
                 header="| source | reference | translation |"):
        self.predictor = predictor
        self.sources = sources
        self.references = references
        self.heatmaps = heatmaps
        self.tag = tag
        self.header = header

    @classmethod
    def from_corpus(cls, predictor, corpus, count, **options):
        """`count` pairs of a `ParallelCorpus` spread over all of it (None when `count` is 0)."""
        if not count:
            return None
        picks = sorted({round(i * (len(corpus) - 1) / max(count - 1, 1)) for i in range(count)}) if len(corpus) else []
        return cls(predictor, [corpus.source[i] for i in picks], [corpus.target[i] for i in picks], **options)

    def __call__(self, trainer, epoch, valid_loss):
        if not self.sources:
            return
        outputs = self.predictor.translate(self.sources)
        rows = [self.header, "|---|---|---|"]
        for source, reference, output in zip(self.sources, self.references, outputs):
            logger.info("sample: %s => %s (reference: %s)", source, output, reference)
            rows.append(f"| {_cell(source)} | {_cell(reference)} | {_cell(output)} |")
        trainer.write_text(self.tag, "\n".join(rows))
        for index, source in enumerate(self.sources[: self.heatmaps]):
            trainer.write_image(f"attention/{index}", attention_heatmap(*self.predictor.attention(source)[:3]))


def _cell(text):
    return text.replace("|", "\\|")
