"""A data bundle's name: its one top-level folder, from a list of paths, a walk's paths joined
by line breaks (the fast path for a scan's file list) or any iterable (a tree's entries), with
the same answer and the same error."""

import pytest

from kaos.errors import BundleError
from kaos.pipeline.bundles import data_bundle_name, data_bundle_name_of_walk

NAMED = [
    (["features/a.csv", "features/b/c.csv"], "features"),
    (["features/a.csv", ".kaosignore"], "features"),  # a dot file beside the folder is allowed
    ([".kaosignore", "features/a.csv"], "features"),
    ([f"samples/{i % 7}/{i}.txt" for i in range(1000)], "samples"),
]
REFUSED = [
    (["a/x", "b/y"], "found: a, b"),
    (["a/x", "ab/y"], "found: a, ab"),  # a name that starts like the first is another folder
    (["a/x", "a.txt"], "found: a, a.txt"),
    (["loose.txt"], "found: loose.txt"),
    ([], "found: nothing"),
]


@pytest.mark.parametrize(("paths", "name"), NAMED)
def test_the_one_top_folder_names_the_bundle(paths, name):
    assert data_bundle_name(paths) == name
    assert data_bundle_name(iter(paths)) == name
    assert data_bundle_name_of_walk("\n".join(paths)) == name  # a walk's joined paths


@pytest.mark.parametrize(("paths", "found"), REFUSED)
def test_anything_but_one_top_folder_is_refused_naming_what_was_found(paths, found):
    for given in (paths, iter(paths)):
        with pytest.raises(BundleError, match=f"exactly one top-level folder, {found} \\("):
            data_bundle_name(given)
    with pytest.raises(BundleError, match=f"exactly one top-level folder, {found} \\("):
        data_bundle_name_of_walk("\n".join(paths))
