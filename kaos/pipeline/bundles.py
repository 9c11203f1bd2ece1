"""What makes a tree a valid source or data bundle (pure checks on the tree's entries)."""

from __future__ import annotations

from collections.abc import Iterable

from kaos.errors import BundleError
from kaos.store.tree import Tree


def source_bundle_name(tree: Tree) -> str:
    """A source bundle holds one top-level folder `<name>/` with a Dockerfile and model/train."""
    name = _single_top_folder(tree, "source")
    missing = [p for p in ("Dockerfile", "model/train") if tree.get(f"{name}/{p}") is None]
    train = tree.get(f"{name}/model/train")
    if missing or train is None:
        raise BundleError(
            f"source bundle /{name} has no {' and no '.join(missing)}",
            f"add {name}/{missing[0]} (see templates/mnist/model-train)",
        )
    if not train.executable:
        raise BundleError(
            f"{name}/model/train is not executable", f"run: chmod +x {name}/model/train"
        )
    return name


def serve_bundle_name(tree: Tree) -> str:
    """A serve source (the kaos 1.0 path) holds one top-level folder `<name>/` with an
    executable model/serve (and a Dockerfile for the docker executor)."""
    name = _single_top_folder(tree, "serve source")
    serve = tree.get(f"{name}/model/serve")
    if serve is None:
        raise BundleError(
            f"serve source /{name} has no model/serve",
            f"add an executable {name}/model/serve that answers /invocations and /ping on $PORT",
        )
    if not serve.executable:
        raise BundleError(
            f"{name}/model/serve is not executable", f"run: chmod +x {name}/model/serve"
        )
    return name


def data_bundle_name(tree: Tree | Iterable[str]) -> str:
    """A data bundle holds one top-level folder, e.g. `features/`. Takes a tree or just its
    paths (a scanned folder's, so no tree of entries is built to name it), or its top-level
    names with folders as `name/` (`ContentStore.top_level`)."""
    return _single_top_folder(tree, "data")


def data_bundle_name_of_walk(names: str) -> str:
    """The same for a walk's paths joined by line breaks (`scan_folder`'s `vet`): no list
    of paths is made for a folder under one top folder."""
    top = _sole_top_folder(names)
    tops_of = {top: True} if top is not None else _each_top(names.split("\n") if names else [])
    return _one_folder_of(tops_of, "data")


def _single_top_folder(tree: Tree | Iterable[str], kind: str) -> str:
    paths = (e.path for e in tree) if isinstance(tree, Tree) else tree
    return _one_folder_of(_tops(paths), kind)


def _one_folder_of(tops_of: dict[str, bool], kind: str) -> str:
    tops = sorted(tops_of)
    folders = [t for t in tops if tops_of[t]]
    loose = [t for t in tops if t not in folders and not t.startswith(".")]
    if len(folders) != 1 or loose:
        raise BundleError(
            f"a {kind} bundle must hold exactly one top-level folder, "
            f"found: {', '.join(tops) or 'nothing'}",
            f"pass the folder that contains the {kind} folder (e.g. templates/mnist/"
            + ("model-train)" if kind == "source" else "data)"),
        )
    return folders[0]


def _tops(paths: Iterable[str]) -> dict[str, bool]:
    """Every top-level name, and whether it is a folder."""
    if isinstance(paths, list) and paths:
        top = _sole_top_folder("\n".join(paths))
        if top is not None:
            return {top: True}
    return _each_top(paths)


def _each_top(paths: Iterable[str]) -> dict[str, bool]:
    return {p.split("/", 1)[0]: "/" in p for p in paths}


def _sole_top_folder(names: str) -> str | None:
    """The one folder holding every path of `names` (joined by line breaks), else None.
    A data bundle's usual shape, recognised in one pass in C: at 100,000 paths 2 ms instead
    of 11 (path names hold no line break, so the joined form cannot mislead)."""
    first = names.split("\n", 1)[0]
    if "/" not in first:
        return None
    top = first.split("/", 1)[0]
    return top if ("\n" + names).count(f"\n{top}/") == names.count("\n") + 1 else None


def bundle_label(name: str, digest: str) -> str:
    """How bundles are shown: `/mnist:e23a2`."""
    return f"/{name}:{digest[:5]}"
