"""The one decoder against the hostile corpus: an upright RGB image or a named error, per file."""

import resource

import numpy as np
import pytest

from aligngemini.datamodules.images import BadImageError, DecodeLimits, decode_image
from aligngemini.testing.hostile import RED, WHITE, make_hostile_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return {case.name: case for case in make_hostile_corpus(tmp_path_factory.mktemp("hostile"))}


def _close(pixel, colour, tol=8):
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, colour))


def test_corpus_covers_the_hostile_kinds(corpus):
    names = set(corpus)
    for kind in ("zero_byte", "truncated", "bomb", "text", "cmyk", "gray16", "palette", "alpha",
                 "exif_rotated", "tiny_1x1", "wide", "animated.gif", "animated.webp", "loop", "folder"):
        assert any(kind in name for name in names), kind
    assert {c.expect for c in corpus.values()} == {"image", "error"}


def test_every_file_gives_an_rgb_image_or_a_named_error(corpus):
    for case in corpus.values():
        if case.expect == "image":
            image = decode_image(case.path)
            assert image.mode == "RGB", case.name
            assert image.size == case.size, case.name
        else:
            with pytest.raises(BadImageError) as info:
                decode_image(case.path)
            assert info.value.path == str(case.path), case.name
            assert str(case.path) in str(info.value)
            assert case.reason in info.value.reason, (case.name, info.value.reason)


def test_exif_orientation_is_applied(corpus):
    image = decode_image(corpus["exif_rotated.jpg"].path)
    # Stored 40x24 with the left half red; turned 90 degrees clockwise the red half is on top.
    assert image.size == (24, 40)
    assert _close(image.getpixel((12, 5)), RED, tol=20)
    assert _close(image.getpixel((12, 35)), WHITE, tol=20)


def test_sixteen_bit_is_scaled_not_clipped(corpus):
    row = np.asarray(decode_image(corpus["gray16.png"].path))[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[len(row) // 4] - 64) <= 3  # a clip at 255 would give 255 almost everywhere
    assert abs(row[len(row) // 2] - 128) <= 3


@pytest.mark.parametrize("name", ["alpha.png", "palette_transparent.png"])
def test_transparency_is_composited_on_white(corpus, name):
    image = decode_image(corpus[name].path)
    assert _close(image.getpixel((4, 4)), RED)
    assert _close(image.getpixel((28, 28)), WHITE)  # transparent black must not leak


def test_cmyk_and_animated_files_give_their_colours(corpus):
    assert _close(decode_image(corpus["cmyk.jpg"].path).getpixel((5, 5)), RED)
    for name in ("animated.gif", "animated.webp"):
        assert _close(decode_image(corpus[name].path).getpixel((5, 5)), RED), name  # first frame


def test_decompression_bombs_are_refused_before_allocation(corpus):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name in ("bomb.png", "bomb_moderate.png"):
        assert corpus[name].path.stat().st_size < 200
        with pytest.raises(BadImageError, match="decompression bomb"):
            decode_image(corpus[name].path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100  # decoding the moderate bomb alone would take ~240 MB


def test_pixel_limit_is_configurable(corpus):
    with pytest.raises(BadImageError, match="pixel limit"):
        decode_image(corpus["wide.png"].path, DecodeLimits(max_pixels=10_000))
