"""Corpus-level translation metrics with sacreBLEU: BLEU (13a tokenization) and chrF, on detokenized text."""

import sacrebleu


def corpus_scores(hypotheses, references):
    """sacreBLEU BLEU and chrF of detokenized hypotheses against raw references.

    Args:
        hypotheses: list of str, one per reference.
        references: list of str.
    Returns:
        A dict: `bleu`, `chrf` (0-100), the BLEU n-gram `precisions`, `brevity_penalty`, and the metric
        `signatures` that make the figures reproducible.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references; they must pair up.")
    bleu = sacrebleu.metrics.BLEU(tokenize="13a")
    chrf = sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "precisions": [round(p, 1) for p in bleu_score.precisions],
        "brevity_penalty": round(bleu_score.bp, 3),
        "sentences": len(references),
        "signatures": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
    }
