"""bench/dedup.py: the sampled baseline extrapolates its samples to the whole set, and the bench runs in that mode
on the tiny set, printing the ratios (no timing asserted)."""

from pathlib import Path

import pytest

from assets.dedup.phash import compute_image_hashes
from bench.dedup import decode_floor, load_folders, main, naive_sampled


def test_the_sampled_baseline_scales_its_samples_to_every_photo_and_every_pair(tiny_dataset):
    images, _ = load_folders([tiny_dataset])
    count = len(images)
    hashes, _ = compute_image_hashes(images, Path("/"), cache=None, workers=1)
    naive = naive_sampled(images, 12, hash_sample=10, pair_sample=20, phashes=hashes["phash"].tolist())
    assert naive["hash_photos"] == 10 and naive["pairs_sample"] == 20 * 19 // 2
    assert naive["pairs"] == count * (count - 1) // 2
    assert naive["hash_seconds"] == pytest.approx(naive["hash_seconds_sample"] * count / 10)
    assert naive["loop_seconds"] == pytest.approx(naive["loop_seconds_sample"] * naive["pairs"] / 190)
    assert 0 <= naive["hits_sample"] <= 190


def test_samples_larger_than_the_set_are_the_set(tiny_dataset):
    images, _ = load_folders([tiny_dataset])
    hashes, _ = compute_image_hashes(images, Path("/"), cache=None, workers=1)
    naive = naive_sampled(images, 12, hash_sample=10**6, pair_sample=10**6, phashes=hashes["phash"].tolist())
    assert naive["hash_photos"] == len(images) and naive["pairs_sample"] == naive["pairs"]
    assert naive["loop_seconds"] == pytest.approx(naive["loop_seconds_sample"])


def test_the_bench_prints_the_hashing_and_search_ratio_with_a_sampled_baseline(tiny_dataset, capsys):
    main([str(tiny_dataset), "--workers", "1", "--naive-full-below", "0", "--naive-hash-sample", "8"])
    out = capsys.readouterr().out
    assert "extrapolated: full-decode hashing of 8 photos" in out
    assert "speed-up, hashing + pair search" in out and "speed-up, pair search alone" in out
    assert "pairwise loop alone" in out
    assert "groups not compared" in out
    assert "no hashing that decodes every photo beats" in out


def test_the_decode_floor_decodes_a_sample_at_one_eighth_scale(tiny_dataset):
    images, _ = load_folders([tiny_dataset])
    floor = decode_floor(images, sample=12)
    assert floor["photos"] == 12 and floor["ms_per_photo"] > 0
    # 1/8 of each side: about 1/64 of the pixels (sides round up), far below the 1/4 a 1/2-scale decode keeps.
    assert 1 / 64 <= floor["pixel_share"] < 1 / 40
    assert decode_floor(images, sample=10**6)["photos"] == len(images)


def test_below_the_threshold_the_whole_baseline_runs_and_the_groups_are_compared(tiny_dataset, capsys):
    main([str(tiny_dataset), "--workers", "1"])
    out = capsys.readouterr().out
    assert "measured on every photo" in out and "speed-up, hashing + pair search" in out
    assert "agreement with baseline groups (same distance)" in out and "truth, baseline" in out
