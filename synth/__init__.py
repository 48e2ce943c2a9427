"""Synthetic humpback-fluke photos in the exact layout of the Kaggle "Humpback Whale Identification" data.

Every individual whale has a persistent identity (fluke outline with notch, nicks and scallops; a
black/white underside pattern with blotches, spots and rake-mark scars) and every photo of it is a new
view: pose, scale, placement, lighting, blur, noise, JPEG quality, colour or grayscale, ocean, sky,
foam and dripping water.  The label structure follows the real competition (ids per number of photos,
new_whale share, test composition, duplicates, aliases), scaled by ``scale``.

Written to ``out_dir``::

    train.csv               Image,Id                  (as Kaggle)
    train/*.jpg, test/*.jpg
    sample_submission.csv   Image,Id                  (new_whale + the four most frequent ids)
    solution.csv            Image,Id                  true label of every test image (new_whale if unseen)
    boxes.csv               Image,x0,y0,x1,y1         true fluke box of every image (pixels, x1/y1 exclusive)
    duplicates.csv          Image,group               images of true duplicate groups (size >= 2)
    aliases.csv             Id,alias_of               ids that are the same whale as another id
    annotations/boxes.csv   Image,x0,y0,x1,y1         hand-annotation stand-in for ~15% of train images
    individuals.csv         Image,individual          hidden true individual of every image
    images.csv              Image,split,width,height,mode,gray,quality,source
    summary.json            the dict returned by generate()
    photo_conditions.csv    Image,condition           harder variants only: normal, small, blurred, backlit, dorsal
    individual_variants.csv individual,lookalike_of,washout   harder variants only: each varied whale
    encounters.csv          Image,encounter           with ``--encounters`` only: test photos of one whale, taken
                                                      together (every test photo then has an EXIF time)

``layout="happywhale"`` (``--layout happywhale``) writes the same set as the 2022 "Happywhale" competition laid
its data out (``synth.layouts``): ``train.csv`` as ``image,species,individual_id``, ``train_images/``,
``test_images/``, ``sample_submission.csv`` as ``image,predictions``, ``solution.csv`` as ``image,individual_id``,
``new_individual`` for new_whale, plus train rows of other species (``bottlenose_dolphin``, ``beluga``; 10% of the
train photos) with photos of their own; every other table as above. The 2019 layout's files are unchanged by it.

Harder data, for evaluating the chain on sets it was never tuned on (``synth.variants``; options of
``generate`` and of ``flukeid synth``).  Each option is a share in [0, 1], 0 by default; values outside are
refused with an error naming the option.  With all three at 0 the data set is byte for byte the standard
one, and with any of them on every photo that no option touched is byte-identical to the standard set's of
the same seed (the variants draw only from streams of their own):

``lookalikes`` (``--lookalikes``), share of the known whales that are near copies of another known whale,
    their twin (twins are never look-alikes themselves; several look-alikes may share a twin when the share
    is above 0.5).  A look-alike is built from its twin's identity draws: the same outline (trailing edge,
    notch, nicks: identical), the same tones, and the same black/white field except for its own smooth
    noise added at ``LOOKALIKE_LAYOUT_JITTER`` (0.25) of the field's spread before the threshold (about
    92-97% of the fluke keeps its colour); ``LOOKALIKE_MARK_SHARE`` (25%, at least one) of the twin's marks
    (spots, rings, whole rakes) are removed and as many of the same kinds re-drawn at new places.
``washout`` (``--washout``), share of all whales (not look-alikes; a look-alike of a washed-out twin is
    washed out too) whose fluke is nearly all white or nearly all black (half each): white share 97.5-99.5%
    or 0.5-2.5%, a trailing-edge margin at most ``WASHOUT_MARGIN_MAX`` thick, only ``WASHOUT_MARK_KEEP``
    (30%) of the marks kept; the outline is the whale's own, so it is what identifies it.
``hard_photos`` (``--hard-photos``), share of the original photos (a duplicate is as hard as its source)
    that are, in equal numbers and at random: ``small`` (the fluke 7-16% of the frame's width; half of them
    also stored only 240-420 px wide), ``blurred`` (out of focus: Gaussian sigma 3-6.5 px per 1000 px, or
    shaken: motion blur over 2-4.5% of the width), ``backlit`` (the sun behind the whale: a dark fluke, its
    pattern flattened, against a bright sea and sky with a glare spot, veiling glare over the frame) or
    ``dorsal`` (the top of the fluke: a uniform dark surface with at most a faint trace of the underside
    pattern; seen from the other side, so the outline is the same whale's, mirrored left to right).

``variant`` (``--variant``) names a preset, which explicit options override: ``standard`` (all 0),
``lookalike`` (lookalikes 0.3, washout 0.1), ``harsh`` (hard_photos 0.3, washout 0.15, lookalikes 0.1).
``summary.json`` records each option, the preset and the counts only when they are non-zero / not standard.

Deterministic per seed whatever the number of workers: every random draw comes from a
``numpy.random.SeedSequence(seed, spawn_key=...)`` keyed by plan / individual / image index
(``synth.draws``).

Modules, in the order a data set is made: ``plan`` (counts and the label structure), ``individuals`` (each
whale's fluke outline and pattern), ``render`` (one photo), ``duplicates`` (near copies of a photo),
``write`` (the tables), ``dataset`` (``generate``: all of it over worker processes), ``sheet``
(``contact_sheet``: a look at the result); ``variants`` (the harder options, used by ``individuals``,
``render`` and ``write``); ``layouts`` (the Happywhale layout, used by ``dataset`` and ``write``).  Imports only
``core``.
"""

from synth.dataset import generate
from synth.plan import KAGGLE_IMAGES_PER_ID
from synth.sheet import contact_sheet

__all__ = ["generate", "contact_sheet", "KAGGLE_IMAGES_PER_ID"]
