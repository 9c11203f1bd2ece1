import os
import threading

from kaos.store import ContentStore, StatCache, scan_folder
from kaos.store import ahead as ahead_module
from kaos.store import scan as scan_module
from kaos.store import writer as writer_module
from kaos.store.backends import LocalBackend


def test_add_folder_reads_each_small_file_once_and_round_trips(tmp_path, kaos_home, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"f{i}.txt").write_text(f"line {i}\n" * 40)
    (src / "big.csv").write_text("1,2,3,4,5,6,7,8\n" * 400_000)  # chunked, streamed from disk
    opened: list[str] = []
    real_open, real_os_open = open, os.open
    probing = threading.local()  # the page-cache probe opens files: no read of the content
    real_probe = ahead_module.in_page_cache

    def probe(files):
        probing.on = True
        try:
            return real_probe(files)
        finally:
            probing.on = False

    def counting(real):
        def counted(path, *args, **kwargs):
            small = str(path).startswith(str(src / "f"))  # the small files, not their folder
            if small and not getattr(probing, "on", False):
                opened.append(str(path))
            return real(path, *args, **kwargs)

        return counted

    monkeypatch.setattr(ahead_module, "in_page_cache", probe)

    monkeypatch.setattr(os, "open", counting(real_os_open))  # the scan's reads
    monkeypatch.setattr(scan_module, "open", counting(real_open), raising=False)
    monkeypatch.setattr(writer_module, "open", counting(real_open), raising=False)
    store = ContentStore(LocalBackend(tmp_path / "store"), kaos_home)
    tree = store.add_folder(src, StatCache(kaos_home / "state.db"))
    small_opens = [p for p in opened if not p.endswith("big.csv")]
    assert len(small_opens) == 200 == len(set(small_opens))
    assert store.missing(tree.digests() | {tree.digest}) == set()
    out = store.checkout(tree, tmp_path / "out", link=False)
    assert scan_folder(out).tree == tree
