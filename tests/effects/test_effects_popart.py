"""`popart`: palette-only output and the colour rule on pixels worked out by hand from effects.md."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petcut import effects
from tests.support.images import random_rgba

NAME = "popart"
HOT_PINK, SPRING_GREEN, BLUE_VIOLET = (255, 20, 147), (0, 255, 127), (138, 43, 226)
DEEP_SKY_BLUE, RED_ORANGE, LIME_GREEN, BLACK = (0, 191, 255), (255, 69, 0), (50, 205, 50), (0, 0, 0)
ALLOWED = {HOT_PINK, SPRING_GREEN, BLUE_VIOLET, DEEP_SKY_BLUE, RED_ORANGE, LIME_GREEN, BLACK}
#: above luminance 40, the colour of each band (its upper bound, inclusive)
LUMA_BANDS = ((70, BLUE_VIOLET), (100, DEEP_SKY_BLUE), (130, HOT_PINK), (160, LIME_GREEN), (190, SPRING_GREEN),
              (210, LIME_GREEN), (240, HOT_PINK), (math.inf, DEEP_SKY_BLUE))  # fmt: skip
#: a dominant red, green or blue channel: (odd channel sum, even channel sum)
DOMINANT = ((HOT_PINK, RED_ORANGE), (SPRING_GREEN, LIME_GREEN), (BLUE_VIOLET, DEEP_SKY_BLUE))


def popart_pixel(rgb):
    """effects.md popart, one pixel, plain Python floats."""
    c = [min(max((x - 128) * 2.5 + 128, 0), 255) for x in rgb]
    lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
    s = [min(max(lum + (x - lum) * 2.0, 0), 255) for x in c]
    p = [min(max(round(x / 127.5) * 127.5, 0), 255) for x in s]  # Python round: half to even
    y = 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2]
    colour = BLACK if y < 40 else next(band for bound, band in LUMA_BANDS if y <= bound)
    if max(p) - min(p) > 60:
        odd = int(sum(p)) % 2 == 1
        for channel, (odd_colour, even_colour) in enumerate(DOMINANT):
            others = [v for i, v in enumerate(p) if i != channel]
            if p[channel] == max(p) and all(p[channel] > v + 30 for v in others):
                colour = odd_colour if odd else even_colour
                break
    return colour


def render_pixels(pixels):
    rgba = np.array([[(*px, 255) for px in pixels]], dtype=np.uint8)
    return [tuple(int(v) for v in px[:3]) for px in effects.apply(NAME, rgba)[0]]


@pytest.mark.parametrize(
    ("rgb", "expected", "why"),
    [
        ((0, 0, 0), BLACK, "p = 0, Y = 0"),
        ((255, 255, 255), DEEP_SKY_BLUE, "p = 255, Y = 255 > 240, no hue"),
        ((128, 128, 128), HOT_PINK, "s = 128 → p = 127.5, Y = 127.5 in (100, 130]"),
        ((255, 0, 0), HOT_PINK, "p = (255, 0, 0): Y = 54.2 is blue violet, red dominant, sum 255 odd"),
        ((0, 0, 255), BLUE_VIOLET, "p = (0, 0, 255): Y = 18.4 is black, blue dominant, sum 255 odd"),
        ((0, 130, 0), SPRING_GREEN, "p = (0, 127.5, 0): Y = 91.2 deep sky blue, green dominant, int 127 odd"),
        ((255, 140, 0), RED_ORANGE, "p = (255, 127.5, 0): Y = 145.4 lime, red dominant, int 382 even"),
        ((128, 0, 255), DEEP_SKY_BLUE, "p = (127.5, 0, 255): Y = 45.5 violet, blue dominant, 382 even"),
        ((255, 0, 160), DEEP_SKY_BLUE, "p = (255, 0, 255): Y = 72.6, two maxima so no hue override"),
    ],
)
def test_known_pixels(rgb, expected, why):
    assert render_pixels([rgb]) == [expected], why


def test_random_pixels_follow_the_rule():
    rng = np.random.default_rng(30)
    pixels = [tuple(int(v) for v in px) for px in rng.integers(0, 256, (3000, 3))]
    pixels += [(r, g, b) for r in (0, 64, 100, 128, 150, 200, 255) for g in (0, 90, 128, 255) for b in (0, 128, 255)]
    got = render_pixels(pixels)
    expected = [popart_pixel(px) for px in pixels]
    assert got == expected
    assert len(set(got)) >= 6  # the sample reaches most of the palette


def test_output_colours_are_in_the_palette():
    out = effects.apply(NAME, random_rgba(64, 64, seed=31))
    colours = {tuple(int(v) for v in px) for px in out[..., :3].reshape(-1, 3)}
    assert colours <= ALLOWED
