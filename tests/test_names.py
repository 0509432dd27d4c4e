"""Names that become paths are one safe path part, and paths built from them stay inside their root."""

import pytest

from mame.names import UnsafePathError, check_name, inside, is_safe_name, relative_inside


@pytest.mark.parametrize("name", ["vgg16", "step1", "r1-plain", "a.b", "x_y", "A9", "a..b"])
def test_safe_names(name):
    assert is_safe_name(name) and check_name(name, "variant") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", ".hidden", "-rf", "a b", "é", "x" * 101, 7, None,
                                  "a\nb", "a\\b"])
def test_unsafe_names_are_refused_saying_what_and_why(name):
    assert not is_safe_name(name)
    with pytest.raises(UnsafePathError, match=r"^variant: .* is not a safe name"):
        check_name(name, "variant")


def test_a_path_that_leaves_its_root_is_refused_before_anything_touches_it(tmp_path):
    root = tmp_path / "runs"
    (root / "features").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    assert inside(root, "features", "vgg16") == (root / "features" / "vgg16").resolve()
    assert relative_inside(root, root / "features" / "x").as_posix() == "features/x"
    for parts in (("..", "victim"), ("features", "../../victim"), (str(victim),)):
        with pytest.raises(UnsafePathError, match=r"^run: .* leads outside"):
            inside(root, *parts, what="run")
    (root / "features" / "link").symlink_to(victim)  # a link inside that points out is followed, then refused
    with pytest.raises(UnsafePathError, match="leads outside"):
        inside(root, "features", "link")
    assert victim.exists() and list(victim.iterdir()) == []
