"""Attention heatmaps and confusion matrices as images (PNG files and TensorBoard), drawn with Pillow."""

import io
import unicodedata

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# A system font with accents and the "▁" word marker, where one is installed; else Pillow's own font,
# with the labels reduced to ASCII.
_FONTS = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
          "/Library/Fonts/Arial Unicode.ttf", "C:/Windows/Fonts/arial.ttf")


def _font(size):
    for name in _FONTS:
        try:
            return ImageFont.truetype(name, size), True
        except OSError:
            continue
    return ImageFont.load_default(size=size), False


def _ascii(text):
    text = text.replace("\u2581", "_").replace("\u00bf", "?").replace("\u00a1", "!")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def attention_heatmap(weights, source_tokens, target_tokens, cell=22, font_size=13):
    """Draws attention weights as a heatmap with the tokens as labels.

    Args:
        weights: float array `(target_length, source_length)`, rows summing to 1.
        source_tokens: list of str, the column labels (drawn vertically on top).
        target_tokens: list of str, the row labels (left).
        cell: int. Pixels per cell.
    Returns:
        A `PIL.Image` (RGB): darker cells are stronger attention.
    """
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(f"weights of shape {weights.shape} do not match {len(target_tokens)} target and "
                         f"{len(source_tokens)} source tokens.")
    font, unicode_font = _font(font_size)
    if not unicode_font:
        source_tokens, target_tokens = [_ascii(t) for t in source_tokens], [_ascii(t) for t in target_tokens]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text):
        return int(measure.textlength(text, font=font)) + 6

    left = max([width(t) for t in target_tokens] + [20])
    top = max([width(t) for t in source_tokens] + [20])
    rows, columns = weights.shape
    image = Image.new("RGB", (left + columns * cell + 2, top + rows * cell + 2), "white")
    draw = ImageDraw.Draw(image)
    scale = weights / max(float(weights.max()), 1e-9)
    for i in range(rows):
        for j in range(columns):
            shade = int(255 * (1.0 - scale[i, j]))
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255))
        draw.text((2, top + i * cell + (cell - font_size) // 2), target_tokens[i], fill="black", font=font)
    for j, token in enumerate(source_tokens):
        label = Image.new("RGB", (top, cell), "white")
        ImageDraw.Draw(label).text((3, (cell - font_size) // 2), token, fill="black", font=font)
        image.paste(label.rotate(90, expand=True), (left + j * cell, 0))
    return image


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def confusion_matrix_image(matrix, labels, cell=40, font_size=13):
    """Draws a confusion matrix with its counts, shaded by each row's share (the recall of that class).

    Args:
        matrix: int array `(num_labels, num_labels)`: rows the reference class, columns the predicted class
            (`classification_scores(...)["confusion_matrix"]["matrix"]`).
        labels: list of str, the run's labels, the order of the rows and columns.
        cell: int. Pixels per cell.
    Returns:
        A `PIL.Image` (RGB); `np.asarray(image)` is the `(height, width, 3)` uint8 array that TensorBoard
        (`Trainer.write_image`) takes, `png_bytes(image)` the PNG file.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"a confusion matrix of shape {matrix.shape} does not match {len(labels)} labels; it "
                         "is square, one row and one column a label.")
    font, unicode_font = _font(font_size)
    labels = [str(label) if unicode_font else _ascii(str(label)) for label in labels]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text):
        return int(measure.textlength(text, font=font)) + 8

    corner = ("reference \u2193", "predicted \u2192") if unicode_font else ("reference", "predicted")
    left = max([width(t) for t in labels + list(corner)])
    top = max([width(t) for t in labels] + [2 * font_size + 12])
    size = len(labels)
    image = Image.new("RGB", (left + size * cell + 2, top + size * cell + 2), "white")
    draw = ImageDraw.Draw(image)
    draw.text((2, 2), corner[0], fill="gray", font=font)
    draw.text((2, 2 + font_size + 4), corner[1], fill="gray", font=font)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i in range(size):
        for j in range(size):
            shade = int(255 * (1.0 - shares[i, j]))
            x, y = left + j * cell, top + i * cell
            fill = (shade, 255, shade) if i == j else (255, shade, shade)
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=fill, outline="lightgray")
            count = str(matrix[i, j])
            draw.text((x + (cell - measure.textlength(count, font=font)) / 2, y + (cell - font_size) // 2), count,
                      fill="black" if shares[i, j] < 0.6 else "white", font=font)
        draw.text((2, top + i * cell + (cell - font_size) // 2), labels[i], fill="black", font=font)
    for j, label in enumerate(labels):
        strip = Image.new("RGB", (top, cell), "white")
        ImageDraw.Draw(strip).text((3, (cell - font_size) // 2), label, fill="black", font=font)
        image.paste(strip.rotate(90, expand=True), (left + j * cell, 0))
    return image
