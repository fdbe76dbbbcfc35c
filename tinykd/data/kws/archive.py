"""Finding Speech Commands: the folder given, $TINYKD_DATA, the cache, or the official archive,
downloaded (or brought by hand), verified against its checksum and unpacked safely."""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ...errors import TinykdError
from ...fileio import atomic_path
from ..cache import cache_dir, md5sum, sha256sum
from .layout import KEYWORDS, check_layout, is_dataset_dir


@dataclass(frozen=True)
class Archive:
    urls: tuple[str, ...]  # official locations, tried in order
    sha256: str
    size: int  # bytes, 0 if not recorded
    folder: str  # name of the extracted folder in the cache

    @property
    def url(self) -> str:
        return self.urls[0]


def _official(name: str) -> tuple[str, ...]:
    return (
        f"https://storage.googleapis.com/download.tensorflow.org/data/{name}",
        f"http://download.tensorflow.org/data/{name}",
    )


ARCHIVES = {
    "v0.02": Archive(
        _official("speech_commands_v0.02.tar.gz"),
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        2428923189,
        "speech_commands_v0.02",
    ),
    "v0.01": Archive(
        _official("speech_commands_v0.01.tar.gz"),
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
        0,
        "speech_commands_v0.01",
    ),
}


def locate(data_dir=None, version: str = "v0.02", download: bool = True, keywords=KEYWORDS) -> Path:
    """The dataset root: data_dir, else $TINYKD_DATA (or a speech_commands* folder in it),
    else the cache, else a verified download into the cache."""
    if version not in ARCHIVES:
        raise TinykdError(f"Unknown Speech Commands version '{version}'; use one of {', '.join(ARCHIVES)}.")
    arch = ARCHIVES[version]
    if data_dir is not None:
        root = Path(data_dir)
        for cand in (root, root / arch.folder, root / "speech_commands"):
            if is_dataset_dir(cand):
                check_layout(cand, keywords)
                return cand
        check_layout(root, keywords)  # raises with the precise problem
        return root
    searched = []
    if os.environ.get("TINYKD_DATA"):
        base = Path(os.environ["TINYKD_DATA"])
        searched += [base / arch.folder, base / "speech_commands", base]
    searched.append(cache_dir() / arch.folder)
    for cand in searched:
        if is_dataset_dir(cand):
            check_layout(cand, keywords)
            return cand
    target = cache_dir() / arch.folder
    archive = cache_dir() / arch.url.rsplit("/", 1)[-1]
    if archive.is_file():  # brought by hand: verify and unpack, no network needed
        return fetch_archive(arch.url, arch.sha256, target, size=arch.size, offline=True)
    if not download:
        raise TinykdError(_absent_message(arch, searched))
    errors = []
    for url in arch.urls:
        try:
            return fetch_archive(url, arch.sha256, target, size=arch.size)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            errors.append(f"{url}: {e}")
    raise TinykdError(_absent_message(arch, searched) + f" (The download failed: {'; '.join(errors)}.)")


def _absent_message(arch: Archive, searched: list[Path]) -> str:
    where = ", ".join(str(p) for p in dict.fromkeys(searched))
    return (
        f"Speech Commands was not found (looked in: {where}) and this machine could not download "
        f"it. On a connected machine fetch {arch.url} (sha256 {arch.sha256}); then either put "
        f"the .tar.gz in {cache_dir()} (it is verified and unpacked on the next run), unpack it "
        f"into {cache_dir() / arch.folder} (so that folder holds yes/, no/, ..., "
        "validation_list.txt), or unpack it anywhere and pass --data-dir / $TINYKD_DATA. Offline, "
        "a synthetic set in the same layout comes from tinykd.data.kws.synth.synthesize_kws."
    )


def fetch_archive(
    url: str,
    sha256: str | None,
    target: Path,
    *,
    md5: str | None = None,
    size: int = 0,
    progress: bool = True,
    timeout: float = 60.0,
    keep_archive: bool = False,
    offline: bool = False,
) -> Path:
    """Download a .tar.gz beside `target`, verify its sha256 (and/or md5), unpack it into
    `target` and (unless keep_archive) delete it. An archive already there that verifies is
    used without downloading (e.g. one copied by hand from a connected machine)."""
    target = Path(target)
    if not sha256 and not md5:
        raise TinykdError("fetch_archive needs a sha256 or md5 to verify the download against.")
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = target.parent / (url.rsplit("/", 1)[-1] or (target.name + ".tar.gz"))

    def verified(path: Path) -> bool:
        return (not sha256 or sha256sum(path) == sha256.lower()) and (not md5 or md5sum(path) == md5.lower())

    if not (archive.is_file() and verified(archive)):
        if offline:
            raise TinykdError(
                f"{archive} does not match its checksum ({'sha256 ' + sha256 if sha256 else 'md5 ' + str(md5)}): "
                f"it is incomplete or not the official file. Delete it and fetch {url} again."
            )
        with atomic_path(archive) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:
                total = int(resp.headers.get("Content-Length") or size or 0)
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=archive.name, leave=False)
                try:
                    for chunk in iter(lambda: resp.read(1 << 20), b""):
                        f.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
            if not verified(tmp):
                got = sha256sum(tmp) if sha256 else md5sum(tmp)
                raise TinykdError(
                    f"The download of {url} is corrupt: its {'sha256' if sha256 else 'md5'} is {got}, "
                    f"expected {sha256 or md5}. The partial file was deleted; run again, or download "
                    f"it by hand and put it at {archive}."
                )
    staging = target.parent / (target.name + ".unpacking")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar.getmembers():
                p = Path(m.name)
                if p.is_absolute() or ".." in p.parts or m.issym() or m.islnk():
                    raise TinykdError(f"{archive} holds an unsafe member '{m.name}'; refusing to unpack it.")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, **safe)
        # Archives either hold the files at the top or inside one folder.
        inner = staging
        entries = list(staging.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and not is_dataset_dir(staging):
            inner = entries[0]
        if target.exists():
            shutil.rmtree(target)
        inner.rename(target)
        if not keep_archive:
            archive.unlink()
    except tarfile.TarError as e:
        raise TinykdError(f"{archive} is not a readable .tar.gz ({e}); delete it and download again.") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
