"""Filters: equal to mne.filter, attenuate what they should, keep Trials metadata."""

import mne
import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurodecode.preprocessing.filters import (
    BandPass,
    FilterBank,
    Notch,
    Resample,
    bandpass,
    filter_bank,
    notch,
    resample,
)
from neurodecode.trials import Trials
from tests.conftest import require_dataset

SF = 250.0


def _sines(freqs, n_epochs=3, n_ch=2, seconds=4.0):
    t = np.arange(int(seconds * SF)) / SF
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs)
    return np.tile(x, (n_epochs, n_ch, 1)), t


def _amplitude(x, f, sfreq=SF):
    """Amplitude at frequency f over the central half (edges excluded)."""
    n = x.shape[-1]
    mid = x[..., n // 4: 3 * n // 4]
    t = np.arange(mid.shape[-1]) / sfreq
    return 2 * np.abs((mid * np.exp(-2j * np.pi * f * t)).mean(-1)).max()


def test_bandpass_equals_mne_and_attenuates():
    X, _ = _sines([3, 10, 60])
    for method in ("fir", "iir"):
        out = bandpass(X, 8, 12, sfreq=SF, method=method)
        np.testing.assert_array_equal(out, mne.filter.filter_data(X, SF, 8, 12, method=method, verbose="error"))
        assert _amplitude(out, 10) > 0.9
        assert _amplitude(out, 3) < 0.05 and _amplitude(out, 60) < 0.05
    # high-pass and low-pass with None edges
    assert _amplitude(bandpass(X, None, 20, sfreq=SF), 60) < 0.05
    assert _amplitude(bandpass(X, 20, None, sfreq=SF), 3) < 0.05


def test_notch_removes_line_noise():
    X, _ = _sines([10, 50, 100])
    out = notch(X, [50, 100], sfreq=SF)
    np.testing.assert_array_equal(out, mne.filter.notch_filter(X, SF, [50, 100], verbose="error"))
    assert _amplitude(out, 50) < 0.05 and _amplitude(out, 100) < 0.05 and _amplitude(out, 10) > 0.95
    with pytest.raises(ValueError, match="below Nyquist"):
        notch(X, [130], sfreq=SF)


def test_resample_keeps_low_frequencies():
    X, _ = _sines([5])
    out = resample(X, 100.0, sfreq=SF)
    assert out.shape == (3, 2, 400)
    np.testing.assert_allclose(out, mne.filter.resample(X, up=100.0, down=SF, verbose="error"))
    assert _amplitude(out, 5, sfreq=100.0) > 0.95


def test_filter_bank_shapes_and_content():
    X, _ = _sines([6, 18])
    bands = [(4, 8), (16, 20), (30, 34)]
    out = filter_bank(X, bands, sfreq=SF)
    assert out.shape == (3, 6, 1000)
    np.testing.assert_array_equal(out[:, 2:4], bandpass(X, 16, 20, sfreq=SF, method="iir"))
    stacked = filter_bank(X, bands, sfreq=SF, stack="bands")
    assert stacked.shape == (3, 3, 2, 1000)
    np.testing.assert_array_equal(stacked.reshape(3, 6, 1000), out)
    assert _amplitude(out[:, :2], 6) > 0.9 and _amplitude(out[:, :2], 18) < 0.05
    assert _amplitude(out[:, 4:], 6) < 0.05 and _amplitude(out[:, 4:], 18) < 0.05
    with pytest.raises(ValueError, match="stack="):
        filter_bank(X, bands, sfreq=SF, stack="time")


def test_trials_in_trials_out():
    X, _ = _sines([10, 60])
    meta = pd.DataFrame({"subject": ["1", "1", "2"]})
    t = Trials(X, y=[0, 1, 0], meta=meta, sfreq=SF, ch_names=["C3", "C4"], modality="eeg",
               positions=np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]), coord_frame="head", name="sim")
    out = bandpass(t, 8, 12)
    assert isinstance(out, Trials) and out.sfreq == SF and out.ch_names == ["C3", "C4"]
    np.testing.assert_array_equal(out.X, bandpass(X, 8, 12, sfreq=SF))
    r = resample(t, 125.0)
    assert r.sfreq == 125.0 and r.X.shape == (3, 2, 500) and list(r.meta["subject"]) == ["1", "1", "2"]
    fb = filter_bank(t, [(8, 12), (20, 30)])
    assert fb.ch_names == ["C3@8-12Hz", "C4@8-12Hz", "C3@20-30Hz", "C4@20-30Hz"]
    assert fb.positions.shape == (4, 3)
    with pytest.raises(ValueError, match="disagrees"):
        bandpass(t, 8, 12, sfreq=100.0)
    with pytest.raises(ValueError, match="sampling rate"):
        bandpass(X, 8, 12)


def test_bandpass_real_eeg_physionet_s001():
    root = require_dataset("mne_data", "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf")
    raw = mne.io.read_raw_edf(root / "MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf", preload=True,
                              verbose="error")
    data = raw.get_data()[:, :1600][None]  # 10 s, 64 channels, 160 Hz
    assert data.shape == (1, 64, 1600) and raw.info["sfreq"] == 160.0
    out = BandPass(8, 30, sfreq=160.0).fit_transform(data)
    ref = raw.copy().crop(0, 1599 / 160.0).filter(8, 30, verbose="error").get_data()[None]
    np.testing.assert_allclose(out, ref, atol=1e-12)
    spec_in = np.abs(np.fft.rfft(data[0, :, 400:1200], axis=-1)).mean(0)
    spec_out = np.abs(np.fft.rfft(out[0, :, 400:1200], axis=-1)).mean(0)
    freqs = np.fft.rfftfreq(800, 1 / 160.0)
    assert (spec_out[freqs < 4] / spec_in[freqs < 4]).max() < 0.1
    assert np.median(spec_out[(freqs > 12) & (freqs < 25)] / spec_in[(freqs > 12) & (freqs < 25)]) > 0.9


def test_transformer_errors():
    with pytest.raises(ValueError, match="sparse|feature"):
        BandPass(1, 10, sfreq=SF).fit(np.zeros((3, 1)))
    fitted = Resample(100.0, sfreq=SF).fit(np.zeros((2, 3, 50)))
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.zeros((2, 4, 50)))


@parametrize_with_checks([BandPass(None, 20, sfreq=100.0, method="iir"), Notch((20.0,), sfreq=100.0),
                          Resample(50.0, sfreq=100.0), FilterBank(((5, 10), (10, 20)), sfreq=100.0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
