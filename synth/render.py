"""Drawing one photo of a whale: its fluke warped into a new pose over ocean, foam and water, then a camera.

Every photo is a new view: pose, scale, placement, lighting, blur, noise, JPEG quality, colour or grayscale,
ocean, sky, foam and dripping water.  All draws come from the image's ``PHOTO`` stream; the whale's
identity (``synth.individuals``) is the same in every photo of it.  A hard photo (``synth.variants``: small,
blurred, backlit, dorsal side) is the same photo changed with draws from its ``VARIANT_PHOTO`` stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from synth import variants as hard
from synth.draws import PHOTO, VARIANT_PHOTO, sigmoid, smooth_noise, stream
from synth.individuals import CH, CW, X0, XG, Y0, YG, Identity, S, identity
from synth.variants import Look


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 H with dst ~ H @ src for 4 point pairs."""
    A, b = [], []
    for (x, y), (u, v) in zip(src, dst):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    h = np.linalg.solve(np.asarray(A, float), np.asarray(b, float))
    return np.append(h, 1.0).reshape(3, 3)


def _apply_h(H: np.ndarray, x: float, y: float) -> tuple[float, float]:
    p = H @ np.array([x, y, 1.0])
    return p[0] / p[2], p[1] / p[2]


def _ocean(rng: np.random.Generator, W: int, H: int) -> np.ndarray:
    """Float RGB ocean (and sometimes sky) background, HxWx3 in [0, 1]."""
    palettes = [
        (0.05, 0.16, 0.27),
        (0.10, 0.22, 0.30),
        (0.18, 0.27, 0.33),
        (0.06, 0.20, 0.22),
        (0.24, 0.30, 0.34),
        (0.05, 0.11, 0.17),
        (0.12, 0.26, 0.36),
        (0.14, 0.20, 0.24),
    ]
    base = np.array(palettes[int(rng.integers(len(palettes)))]) * rng.uniform(0.75, 1.4)
    base = np.clip(base + rng.normal(0, 0.02, 3), 0.02, 1)
    t = np.linspace(0, 1, H, dtype=np.float32)
    rows = np.clip((t * (1.6 - 0.6 * t)) * (H - 1), 0, H - 1).astype(
        np.int64
    )  # perspective: far waves smaller

    def wave(grid):
        return smooth_noise(rng, (H, W), grid)[rows]

    swell = wave((max(3, H // 80), max(3, W // 170)))
    a1 = wave((max(4, H // 7), max(4, W // 45)))  # wave facets, stretched horizontally
    a2 = wave((max(6, H // 3), max(6, W // 18)))
    r1 = np.clip(1 - np.abs(a1), 0, 1) ** 3  # crests: ridged noise
    r2 = np.clip(1 - np.abs(a2), 0, 1) ** 4
    amp = rng.uniform(0.6, 1.4)
    lum = 1.0 + amp * (0.10 * swell + 0.18 * np.tanh(a1 * 1.5) + 0.25 * (r1 - 0.25) + 0.12 * (r2 - 0.2))
    lum *= (1.0 + rng.uniform(0.1, 0.5) * (1 - t))[:, None]  # brighter towards the horizon
    img = base[None, None, :] * lum[:, :, None]
    if rng.random() < 0.2:  # sun glitter on the crests
        g = np.clip((np.tanh(a1 * 1.5) + r2 - rng.uniform(1.5, 1.8)) * 2.5, 0, 1)
        img += g[:, :, None] * rng.uniform(0.3, 0.7)
    if rng.random() < 0.3:  # sky band and horizon
        yh = rng.uniform(0.05, 0.3) * H
        tilt = math.tan(math.radians(rng.normal(0, 1.5)))
        yy = np.arange(H, dtype=np.float32)[:, None]
        xx = np.arange(W, dtype=np.float32)[None, :]
        hor = yh + (xx - W / 2) * tilt
        sky_a = sigmoid((hor - yy) / 1.2)
        sky_col = np.array(
            rng.choice([(0.78, 0.82, 0.86), (0.62, 0.72, 0.84), (0.85, 0.85, 0.83), (0.55, 0.6, 0.66)])
        )
        sky_col = sky_col * rng.uniform(0.85, 1.1)
        grad = 1 - 0.25 * np.clip((hor - yy) / max(yh, 1), 0, 1)
        sky = sky_col[None, None, :] * grad[:, :, None]
        if rng.random() < 0.45:  # distant land
            prof = np.cumsum(rng.normal(0, 1, W // 8 + 2))
            prof = (prof - prof.min()) / (np.ptp(prof) + 1e-6)
            land_h = np.interp(np.arange(W), np.linspace(0, W, len(prof)), prof) * rng.uniform(0.01, 0.06) * H
            land = sigmoid((yy - (hor - land_h[None, :])) / 1.0) * sky_a
            sky = sky * (1 - land[:, :, None]) + land[:, :, None] * (
                np.array([0.22, 0.25, 0.27]) * rng.uniform(0.6, 1.4)
            )
        img = img * (1 - sky_a[:, :, None]) + sky * sky_a[:, :, None]
    return img.astype(np.float32)


class _Placement(NamedTuple):
    """Where the warped fluke landed in a W x H photo."""

    fluke: Image.Image  # RGBA, the warped fluke of the region (rx0, ry0, rx1, ry1)
    region: tuple[int, int, int, int]
    forward: np.ndarray  # homography canonical texture (full resolution) -> photo
    quad: np.ndarray  # the 4 photo corners of the fluke's canonical bounding box
    width_px: float  # fluke width in photo pixels


def render_photo(
    seed: int, ind: int, img_index: int, look: Look | None = None, condition: str = ""
) -> tuple[Image.Image, tuple[int, int, int, int], int, bool]:
    """Render one photo of individual ``ind``.  Returns (image, box, jpeg quality, grayscale).

    ``look``: the individual's variant (``synth.variants.Look``); ``condition``: "" or a hard-photo kind
    (``synth.variants.HARD_KINDS``).
    """
    if condition and condition not in hard.HARD_KINDS:
        raise ValueError(f"unknown photo condition {condition!r}")
    ident = identity(seed, ind, look)
    rng = stream(seed, PHOTO, img_index)
    vrng = stream(seed, VARIANT_PHOTO, img_index)
    W = int(rng.integers(600, 1051))
    H = int(round(W * rng.uniform(0.6, 0.75)))
    chord = ident["chord"]
    if condition == "dorsal":
        ident = hard.dorsal_view(ident, vrng)
    tex_img, alpha, y_w = _fluke_texture(rng, ident, hard.DORSAL_SHEEN if condition == "dorsal" else 1.0)
    if condition == "backlit":
        tex_img = hard.backlit_fluke(vrng, tex_img)
    place = _place(rng, tex_img, alpha, W, H, hard.small_width(vrng) if condition == "small" else None)
    rx0, ry0, rx1, ry1 = place.region

    # ---- compose: ocean, fluke, then foam and water drawn on an overlay
    bg = _ocean(rng, max(16, W // 2), max(16, H // 2))
    if condition == "backlit":
        bg = hard.bright_background(vrng, bg)
    bg_img = Image.fromarray((np.clip(bg, 0, 1) * 255).round().astype(np.uint8), mode="RGB")
    bg_img = bg_img.resize((W, H), Image.BILINEAR).convert("RGBA")
    bg_img.alpha_composite(place.fluke, dest=(rx0, ry0))
    fa = np.zeros((H, W), np.uint8)
    fa[ry0:ry1, rx0:rx1] = np.asarray(place.fluke.getchannel("A"))

    overlay = Image.new("RGBA", (W, H), (255, 255, 255, 0))
    od = ImageDraw.Draw(overlay)
    if y_w < -chord - 0.02 and rng.random() < 0.5:  # foam / splash where the peduncle meets the water
        _splash(rng, od, overlay, place, y_w)
    if rng.random() < 0.45 and y_w < -chord:  # water dripping off the lobes and streaming down
        _drips(rng, od, fa, place.width_px)
    oa = np.zeros((H, W), np.uint8)
    obox = overlay.getchannel("A").getbbox()
    if obox is not None:
        obox = (max(0, obox[0] - 3), max(0, obox[1] - 3), min(W, obox[2] + 3), min(H, obox[3] + 3))
        ov = overlay.crop(obox).filter(ImageFilter.GaussianBlur(0.6))
        oa[obox[1] : obox[3], obox[0] : obox[2]] = np.asarray(ov.getchannel("A"))
        bg_img.alpha_composite(ov, dest=obox[:2])

    if condition == "backlit":
        bg_img = hard.veiling_glare(vrng, bg_img)

    box = _visible_box(fa, oa, place.quad)
    out, quality, gray = _camera(
        rng, bg_img, (lambda im: hard.strong_blur(vrng, im)) if condition == "blurred" else None
    )
    if condition == "small":
        out, box = hard.low_resolution(vrng, out, box)
    return out, box, quality, gray


def _fluke_texture(
    rng: np.random.Generator, ident: Identity, sheen: float = 1.0
) -> tuple[Image.Image, np.ndarray, float]:
    """This photo's look of the canonical fluke: RGBA texture, its alpha, and the waterline ``y_w``.

    ``sheen``: strength of the wet highlights and sheeting water (lower on the dorsal side's dark surface).
    """
    val = ident["val"]
    alpha = ident["alpha"].copy()
    chord, stalk = ident["chord"], ident["stalk"]
    r = rng.random()
    if r < 0.08:  # partly submerged: water cuts the lobes
        y_w = -chord + rng.uniform(0.0, 0.15)
    else:
        y_w = -chord - stalk * rng.uniform(0.1, 1.0)
    fade = np.clip((YG[:, 0] - y_w) / rng.uniform(0.02, 0.08), 0, 1)
    alpha *= fade[:, None]

    gain = rng.uniform(0.7, 1.2)
    phi = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0, 0.35) * (XG * math.cos(phi) + YG * math.sin(phi))
    v = val * shade * gain
    v = np.clip(v, 0, 1.2) ** rng.uniform(0.8, 1.25)
    c = rng.uniform(0.75, 1.05)
    v = 0.45 + c * (v - 0.45)
    if rng.random() < 0.06:  # backlit: dark and flat
        v = 0.08 + 0.3 * v
    if rng.random() < 0.35:  # wet highlights
        hl = np.clip((smooth_noise(rng, (CH, CW), (10, 16)) - rng.uniform(1.0, 1.8)) / 0.5, 0, 1)
        if sheen != 1.0:
            hl = hl * sheen
        v = v + hl * rng.uniform(0.15, 0.4)
    if rng.random() < 0.25:  # water sheeting down the face
        st = np.clip(smooth_noise(rng, (CH, CW), (4, 50)) - 1.0, 0, 1)
        if sheen != 1.0:
            st = st * sheen
        v = v + st * rng.uniform(0.1, 0.25)
    tint = np.array([1.0, 1.0, 1.0]) + np.array([-1.0, 0.0, 1.0]) * rng.normal(0.03, 0.03)
    rgb = np.clip(v[:, :, None] * tint[None, None, :], 0, 1)
    tex = np.dstack([rgb * 255.0, alpha[:, :, None] * 255.0]).round().astype(np.uint8)
    tex_img = Image.fromarray(tex, mode="RGBA")
    return tex_img, alpha, y_w


def _place(
    rng: np.random.Generator,
    tex_img: Image.Image,
    alpha: np.ndarray,
    W: int,
    H: int,
    width_frac: float | None = None,
) -> _Placement:
    """Pose (size, rotation, perspective) and position of the fluke, and the texture warped there.

    ``width_frac``: the fluke's width as a share of the photo's instead of the drawn one (small photos).
    """
    ys, xs = np.nonzero(alpha > 0.5)
    bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    ccx, ccy = (bx0 + bx1) / 2.0, (by0 + by1) / 2.0
    hw, hh = (bx1 - bx0) / 2.0, (by1 - by0) / 2.0

    # ---- pose and placement
    wf = 0.10 + 0.70 * rng.beta(2.6, 1.3)
    if width_frac is not None:
        wf = width_frac
    rot = math.radians(float(np.clip(rng.normal(0, 7), -15, 15)))
    fx, fy = rng.uniform(0.72, 1.0), rng.uniform(0.85, 1.08)
    tilt, yaw = rng.uniform(-0.14, 0.14), rng.uniform(-0.12, 0.12)
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]

    def quad(s):
        out = []
        for u, vv in corners:
            x = u * hw * s * fx * (1 + tilt * vv)
            y = vv * hh * s * fy * (1 + yaw * u)
            out.append((x * math.cos(rot) - y * math.sin(rot), x * math.sin(rot) + y * math.cos(rot)))
        return np.array(out)

    s = wf * W / (2 * hw * fx)
    q = quad(s)
    qw, qh = np.ptp(q[:, 0]), np.ptp(q[:, 1])
    lim = min(0.98 * W / qw, 0.92 * H / qh, 1.0)
    if lim < 1.0:
        s *= lim
        q = quad(s)
        qw, qh = np.ptp(q[:, 0]), np.ptp(q[:, 1])
    over = rng.uniform(0.0, 0.15) if rng.random() < 0.12 else 0.0
    lo_x, hi_x = -q[:, 0].min() - over * qw, W - q[:, 0].max() + over * qw
    lo_y, hi_y = -q[:, 1].min() - over * qh, H - q[:, 1].max() + over * qh
    cx = lo_x + (hi_x - lo_x) * rng.beta(1.6, 1.6) if hi_x > lo_x else W / 2
    cy = lo_y + (hi_y - lo_y) * rng.beta(1.6, 1.6) if hi_y > lo_y else H / 2
    dst = q + np.array([cx, cy])

    # pre-shrink the texture so the perspective warp does not alias
    f = 1.0
    if s < 0.7:
        f = max(s * 1.4, 0.08)
        tex_img = tex_img.resize(
            (max(8, round(CW * f)), max(8, round(CH * f))), Image.BILINEAR, reducing_gap=2.0
        )
    fxr, fyr = tex_img.size[0] / CW, tex_img.size[1] / CH
    src = np.array([(ccx + u * hw, ccy + vv * hh) for u, vv in corners])
    src_s = src * np.array([fxr, fyr])
    Hinv = _homography(dst, src_s)
    Hfwd = _homography(src, dst)  # canonical (full res) -> image
    # warp only into the region the fluke can cover
    reg = np.array([_apply_h(Hfwd, x, y) for x in (bx0 - 4, bx1 + 4) for y in (by0 - 4, by1 + 4)])
    rx0, ry0 = max(0, int(math.floor(reg[:, 0].min()))), max(0, int(math.floor(reg[:, 1].min())))
    rx1, ry1 = min(W, int(math.ceil(reg[:, 0].max())) + 1), min(H, int(math.ceil(reg[:, 1].max())) + 1)
    if rx1 - rx0 < 2 or ry1 - ry0 < 2:
        rx0, ry0, rx1, ry1 = 0, 0, W, H
    Hr = Hinv @ np.array([[1.0, 0.0, rx0], [0.0, 1.0, ry0], [0.0, 0.0, 1.0]])
    coeffs = tuple((Hr / Hr[2, 2]).ravel()[:8])
    fluke = tex_img.transform(
        (rx1 - rx0, ry1 - ry0), Image.PERSPECTIVE, coeffs, resample=Image.BICUBIC, fillcolor=(0, 0, 0, 0)
    )
    return _Placement(fluke, (rx0, ry0, rx1, ry1), Hfwd, dst, 2 * hw * s)


def _splash(
    rng: np.random.Generator, od: ImageDraw.ImageDraw, overlay: Image.Image, place: _Placement, y_w: float
) -> None:
    """Foam and spray where the peduncle meets the water, drawn on ``overlay``."""
    Hfwd, scale_px = place.forward, place.width_px
    wx, wy = _apply_h(Hfwd, X0, Y0 - y_w * S)
    fw = max(6, int(scale_px * rng.uniform(0.12, 0.35)))
    fh = max(4, int(fw * rng.uniform(0.12, 0.25)))
    pw, ph = 2 * fw, 4 * fh
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    env = 1 - ((xx - pw / 2) / fw) ** 2 - ((yy - ph * 0.6) / fh) ** 2
    nz = smooth_noise(rng, (ph, pw), (max(3, ph // 10), max(3, pw // 10)))
    nz2 = smooth_noise(rng, (ph, pw), (max(3, ph // 4), max(3, pw // 4)))
    fa_patch = np.clip(env * 1.5 + 0.5 * nz + 0.3 * nz2 - 0.2, 0, 1) * rng.uniform(0.5, 0.9)
    col = np.clip(0.78 + 0.08 * nz + 0.06 * nz2, 0, 1)[:, :, None] * np.array([0.96, 0.98, 1.0]) * 255
    patch = Image.fromarray(np.dstack([col, fa_patch[:, :, None] * 255]).astype(np.uint8), mode="RGBA")
    patch = patch.filter(ImageFilter.GaussianBlur(max(0.8, fw / 60)))
    overlay.paste(patch, (int(wx - pw / 2), int(wy - ph * 0.6)), patch)
    for _ in range(int(rng.integers(5, 35))):  # spray
        sx = wx + rng.normal(0, fw * 0.45)
        sy = wy - abs(rng.normal(0, fh * 1.2))
        rr = rng.uniform(0.5, 1.8) * max(1.0, scale_px / 400)
        a = int(rng.uniform(90, 200))
        od.ellipse([sx - rr, sy - rr, sx + rr, sy + rr], fill=(240, 244, 248, a))


def _drips(rng: np.random.Generator, od: ImageDraw.ImageDraw, fa: np.ndarray, scale_px: float) -> None:
    """Water dripping off the lobes and streaming down (``fa``: the fluke's alpha in the photo)."""
    H = fa.shape[0]
    m = fa > 127
    colsany = np.flatnonzero(m.any(axis=0))
    if len(colsany) > 4:
        bottom = H - 1 - np.argmax(m[::-1, :], axis=0)
        top = np.argmax(m, axis=0)
        fl_h = float(bottom[colsany].max() - top[colsany].min())
        heavy = rng.random() < 0.3
        for _ in range(int(rng.integers(3, 25 if heavy else 10))):
            x = float(colsany[int(rng.integers(len(colsany)))])
            from_top = rng.random() < 0.2
            y = float(top[int(x)] if from_top else bottom[int(x)])
            ln = rng.uniform(0.05, 0.6 if heavy else 0.3) * fl_h
            wd = max(1, int(round(rng.uniform(0.3, 1.2) * scale_px / 300)))
            a = int(rng.uniform(40, 110) if from_top else rng.uniform(70, 180))
            seg = [(x, y)]
            for t in np.linspace(0, 1, 8)[1:]:
                seg.append((x + rng.normal(0, 0.5) + t * t * rng.normal(0, 2), y + ln * t))
            od.line(seg, fill=(225, 232, 240, a), width=wd)
            for _ in range(int(rng.integers(0, 4))):
                ty = y + ln * rng.uniform(1.0, 1.5)
                rr = rng.uniform(0.5, 1.5) * max(1.0, scale_px / 400)
                od.ellipse([x - rr, ty - rr, x + rr, ty + rr], fill=(235, 240, 246, a))


def _visible_box(fa: np.ndarray, oa: np.ndarray, dst: np.ndarray) -> tuple[int, int, int, int]:
    """The fluke's box: where it shows (alpha > 127) and is not hidden under foam (overlay alpha >= 200)."""
    H, W = fa.shape
    vis = (fa > 127) & (oa < 200)
    if not vis.any():
        vis = fa > 127
    if not vis.any():  # degenerate (should not happen); fall back to the projected quad
        x0, y0 = max(0, int(dst[:, 0].min())), max(0, int(dst[:, 1].min()))
        box = (x0, y0, min(W, max(x0 + 1, int(dst[:, 0].max()))), min(H, max(y0 + 1, int(dst[:, 1].max()))))
    else:
        rr_, cc_ = np.flatnonzero(vis.any(axis=1)), np.flatnonzero(vis.any(axis=0))
        box = (int(cc_[0]), int(rr_[0]), int(cc_[-1]) + 1, int(rr_[-1]) + 1)
    return box


def _camera(
    rng: np.random.Generator, bg_img: Image.Image, blur: Callable[[Image.Image], Image.Image] | None = None
) -> tuple[Image.Image, int, bool]:
    """Blur, white balance, haze, gamma, vignette, sensor noise, grayscale; returns (photo, quality, gray).

    ``blur``: a further blur of the optics (blurred photos), applied before the sensor.
    """
    W, H = bg_img.size
    im = bg_img.convert("RGB")
    if rng.random() < 0.65:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.6) * W / 1000))
    if blur is not None:
        im = blur(im)
    x = np.arange(256, dtype=np.float64) / 255.0
    wb = 1 + np.array([-1.0, 0.0, 1.0]) * rng.normal(0.01, 0.03) + rng.normal(0, 0.012, 3)  # white balance
    gain = rng.uniform(0.8, 1.2)
    hz = rng.uniform(0.08, 0.3) if rng.random() < 0.2 else 0.0  # haze
    hz_level = rng.uniform(0.5, 0.8)
    gamma = rng.uniform(0.8, 1.25)
    lut = []
    for ch in range(3):
        v = np.clip(x * wb[ch] * gain * (1 - hz) + hz * hz_level, 0, 1) ** gamma
        lut.extend(np.round(v * 255).astype(int).tolist())
    im = im.point(lut)
    if rng.random() < 0.3:  # vignette
        yy = (np.arange(H, dtype=np.float32)[:, None] / H - 0.5) * 2
        xx = (np.arange(W, dtype=np.float32)[None, :] / W - 0.5) * 2
        vig = 1 - rng.uniform(0.1, 0.35) * (xx * xx + yy * yy) / 2
        im = ImageChops.multiply(im, Image.fromarray((vig * 255).astype(np.uint8), mode="L").convert("RGB"))
    sigma = rng.uniform(0.004, 0.03) * 255
    noise = (rng.standard_normal((H, W), dtype=np.float32) * np.float32(sigma)).round().astype(np.int16)
    a = np.asarray(im, dtype=np.int16) + noise[:, :, None]
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), mode="RGB")
    gray = bool(rng.random() < 0.5)
    if gray:  # half of the grayscale photos are single-channel files, half RGB with equal channels
        out = out.convert("L")
        if rng.random() < 0.5:
            out = out.convert("RGB")
    quality = int(rng.integers(60, 96))
    return out, quality, gray
