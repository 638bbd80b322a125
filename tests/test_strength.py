"""The default style weight paints as strongly in every mode, and the output size keeps the balance.

Judged as scripts/strength.py judges, the measure of the issue: the output's Gram distance to the
style (relu1_1 ... relu5_1, the style part of scripts/benchmark.py's J) as a fraction of the raw
photo's. Small single-scale runs on the real VGG-19; the script makes the 256 and 512 px figures.
"""

import sys
from pathlib import Path

import pytest

from impasto import StyleConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from strength import MODES, measure_mode  # scripts/ is not a package

pytestmark = pytest.mark.weights

SMALL = StyleConfig(iterations=100, scales=1)
PAIR = "chelsea_starry"
# At 64 px after 100 steps, Gatys's output keeps about 2 % of the photo's Gram distance. Before
# the losses were normalised by their targets, --improved kept 18 %, the correlation chain and the
# geometric weights 12 % and the masked half 14 %: hardly painted. Luminance-only transfer, judged
# against the luminance it paints with, gets further than Gatys in every version (0.3x here).
PAINTED = 0.10
COMPARABLE = 5.0


@pytest.fixture(scope="module")
def figures(real_net):
    return {mode: measure_mode(real_net, PAIR, mode, 64, SMALL).style[0] for mode in MODES}


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_moves_the_gram_distance_about_as_far_as_gatys(figures, mode):
    shown = {m: f"{v:.1%}" for m, v in figures.items()}
    assert figures[mode] < PAINTED, shown
    assert 1 / COMPARABLE < figures[mode] / figures["gatys"] < COMPARABLE, shown


@pytest.mark.parametrize("mode", ["gatys", "improved"])
def test_the_size_changes_the_resolution_not_the_balance(real_net, mode):
    small, large = (measure_mode(real_net, PAIR, mode, size, SMALL).style[0] for size in (48, 96))
    assert 1 / 1.3 < large / small < 1.3, (small, large)
